"""Walking a message's MIME parts: its text and HTML bodies, its attachments, uuencoded and enclosed messages."""

from __future__ import annotations

import binascii
import io
import mimetypes
import os
import quopri
import re
import unicodedata
from dataclasses import dataclass
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser

from actions.intake.charsets import CONTROL, as_bytes, decode, decode_base64, header_parameters, header_text, raw_value


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str = ""
    inline: bool = False


MAX_FILENAME_CHARS = 255
MAX_CONTENT_ID_CHARS = 255
MAX_DEPTH = 50

_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A line "--boundary" followed by a part's MIME header, in a multipart whose declared boundary never appears.
_BOUNDARY_IN_USE = re.compile(rb"^--([^\s\"\\]{1,200})[ \t]*\r?\nContent-[\w-]+[ \t]*:", re.MULTILINE | re.IGNORECASE)
_HTML_START = re.compile(r"<(?:!doctype|html|head|body|div|p|br|table|span|font)\b", re.IGNORECASE)
_UU_BEGIN = re.compile(rb"^begin(?:-base64)?\s+[0-7]{3,4}\s+(.+)$")
# Filenames: invisible characters that reorder text can disguise "gpj.exe" as "exe.jpg".
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
# Names for attachments sent without one; other types get "attachment" and their usual extension.
_UNNAMED = {
    "message/rfc822": "message.eml",
    "message/global": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/disposition-notification": "disposition-notification.txt",
    "message/feedback-report": "feedback-report.txt",
    "text/plain": "attachment.txt",
}
_UUENCODINGS = {"x-uuencode", "uuencode", "uue", "x-uue"}
_WRITE_POLICY = policy.compat32.clone(linesep="\r\n", max_line_length=None)


class Body:
    """Walks the MIME tree: the first text and HTML body parts, and everything else as attachments."""

    def __init__(self, defects: list[str]) -> None:
        self.defects = defects
        self.text = ""
        self.html = ""
        self.attachments: list[ParsedAttachment] = []
        self._text_found = False
        self._html_found = False

    def walk(self, part: Message, depth: int = 0, parent: str = "") -> None:
        content_type = part.get_content_type()
        if depth > MAX_DEPTH:
            self.defects.append(f"Parts nested deeper than {MAX_DEPTH} levels were ignored.")
        elif content_type.startswith("message/"):
            # A forwarded message or a delivery report: kept whole, its body is not ours.
            self._attach(part, content_type, _message_source(part, self.defects))
        elif part.is_multipart():
            for child in part.get_payload():
                self.walk(child, depth + 1, content_type)
        elif content_type.startswith("multipart/") and (found := _with_found_boundary(part)):
            self.defects.append("A multipart section uses another boundary than it declares; the one in use was taken.")
            self.walk(found, depth + 1, parent)
        elif content_type.startswith("multipart/"):
            self.defects.append(f"The message says it is {content_type} but has no parts; its body was read as text.")
            text = self._payload_text(part)
            self._body("text/html" if _HTML_START.search(text[:2000]) else "text/plain", text, parent)
        else:
            self._leaf(part, content_type, parent)

    def _leaf(self, part: Message, content_type: str, parent: str) -> None:
        disposition, name, charset = self._described(part)
        is_body = content_type in ("text/plain", "text/html") and disposition != "attachment" and not name
        if is_body and self._body(content_type, self._payload_text(part, charset), parent):
            return
        self._attach(part, content_type, _payload_bytes(part, self.defects))

    def _described(self, part: Message) -> tuple[str, str, str | None]:
        """A part's disposition ("attachment", "inline" or ""), its filename as sent, and its charset."""
        disposition, params = header_parameters(part, "Content-Disposition", self.defects)
        _, type_params = header_parameters(part, "Content-Type", self.defects)
        return disposition, params.get("filename") or type_params.get("name") or "", type_params.get("charset")

    def _body(self, content_type: str, text: str, parent: str) -> bool:
        """Take text as the body; False when it is a second HTML part, which is kept as an attachment instead."""
        if content_type == "text/plain":
            if not self._text_found:
                self.text, self._text_found = text, True
            elif parent != "multipart/alternative":
                # Some mailers split one body into several inline text parts (around pictures, say).
                self.text = f"{self.text.rstrip()}\n\n{text.lstrip()}"
            return True
        if not self._html_found:
            self.html, self._html_found = text, True
            return True
        return parent == "multipart/alternative"

    def _payload_text(self, part: Message, charset: str | None = None) -> str:
        data = _payload_bytes(part, self.defects)
        text = decode(data, charset, f"The {part.get_content_type()} part", self.defects)
        if _BODY_CONTROL.search(text):
            # Databases refuse NUL in text, and other control characters are noise nobody can read.
            self.defects.append("A text part contains control characters; they were removed.")
            text = _BODY_CONTROL.sub("", text)
        return text.replace("\r\n", "\n").replace("\r", "\n")

    def _attach(self, part: Message, content_type: str, content: bytes) -> None:
        disposition, name, _ = self._described(part)
        if not name and _transfer_encoding(part) in _UUENCODINGS:
            name = _uu_filename(part)
        if not name and content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else Message()
            subject = header_text(raw_value(inner, "Subject") or "", "An enclosed message's Subject", self.defects)
            # A subject is not a path: its slashes must not be taken for folders.
            name = f"{subject.replace('/', '-').replace(chr(92), '-')}.eml" if subject else ""
        content_id = "".join((raw_value(part, "Content-ID") or "").split()).strip("<>")
        if len(content_id) > MAX_CONTENT_ID_CHARS:
            self.defects.append(f"A Content-ID was longer than {MAX_CONTENT_ID_CHARS} characters and was cut.")
            content_id = content_id[:MAX_CONTENT_ID_CHARS]
        self.attachments.append(
            ParsedAttachment(
                filename=safe_filename(name, content_type),
                content_type=content_type,
                content=content,
                content_id=CONTROL.sub("", content_id),
                # Pictures of an HTML body come without a disposition and are named by Content-ID.
                inline=disposition == "inline" or (not disposition and bool(content_id)),
            )
        )


def safe_filename(name: str, content_type: str = "application/octet-stream") -> str:
    """A filename that is safe to store and show: no folders, no control characters, at most 255 characters/bytes."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char) != "Cc").translate(_BIDI_CONTROLS)
    name = name.strip().rstrip(".")
    if not name.strip("."):
        return _unnamed(content_type)
    stem, extension = os.path.splitext(name)
    extension = extension[:20]
    # Filesystems allow 255 bytes, not characters: a long Japanese name would not fit on disk.
    while stem and (len(stem) + len(extension) > MAX_FILENAME_CHARS or len((stem + extension).encode()) > 255):
        stem = stem[:-1]
    return (stem + extension) if stem else name[:MAX_FILENAME_CHARS].encode()[:255].decode("utf-8", "ignore")


def _unnamed(content_type: str) -> str:
    if content_type in _UNNAMED:
        return _UNNAMED[content_type]
    subtype = content_type.partition("/")[2]
    # image/jpg is not a registered type, but its extension is plain to see.
    extension = mimetypes.guess_extension(content_type) or (
        f".{subtype}" if subtype.isalnum() and len(subtype) <= 4 else ""
    )
    return f"attachment{extension}"


def _transfer_encoding(part: Message) -> str:
    words = (raw_value(part, "Content-Transfer-Encoding") or "").replace(";", " ").split()
    return words[0].lower() if words else ""


def _payload_bytes(part: Message, defects: list[str]) -> bytes:
    """A leaf part's content with its transfer encoding (base64, quoted-printable, uuencode) undone."""
    data = _raw_payload(part)
    encoding = _transfer_encoding(part)
    if encoding == "base64":
        return decode_base64(data)
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    if encoding in _UUENCODINGS:
        return _uudecode(data, defects)
    return data


def _raw_payload(part: Message) -> bytes:
    """A leaf part's body bytes exactly as they arrived.

    get_payload() would already decode 8-bit bytes with the declared charset,
    replacing what does not fit, before we could notice the charset is wrong.
    """
    payload = part._payload
    return as_bytes(payload) if isinstance(payload, str) else b""


def _with_found_boundary(part: Message) -> Message | None:
    """The multipart parsed again with the boundary its parts really use (spam tools get this wrong), if any."""
    data = _raw_payload(part)
    found = _BOUNDARY_IN_USE.search(data)
    if not found:
        return None
    header = f'Content-Type: {part.get_content_type()}; boundary="'.encode() + found[1] + b'"\r\n\r\n'
    try:
        reparsed = BytesParser(policy=policy.compat32).parsebytes(header + data)
    except RecursionError:
        return None
    return reparsed if reparsed.is_multipart() else None


def _uu_filename(part: Message) -> str:
    for line in _raw_payload(part).splitlines():
        if begin := _UU_BEGIN.match(line.strip()):
            return begin[1].decode("utf-8", "replace")
    return ""


def _uudecode(data: bytes, defects: list[str]) -> bytes:
    lines = iter(data.splitlines())
    # any() stops at the "begin" line, so the loop below starts right after it.
    if not any(_UU_BEGIN.match(line.strip()) for line in lines):
        if data.strip():
            defects.append("A part says it is uuencoded but has no 'begin' line; it was kept as it is.")
        return data if data.strip() else b""
    decoded = bytearray()
    for line in lines:
        line = line.rstrip(b"\r\n")
        if line.strip() == b"end":
            break
        if not line.strip():
            continue  # binascii reads an empty line as 32 zero bytes
        try:
            decoded += binascii.a2b_uu(line)
        except binascii.Error:
            # Some encoders pad lines with junk; read only as many characters as the length byte promises.
            try:
                decoded += binascii.a2b_uu(line[: (((line[0] - 32) & 63) * 4 + 5) // 3])
            except binascii.Error:
                defects.append("A uuencoded part is damaged; only its beginning was kept.")
                break
    return bytes(decoded)


def _message_source(part: Message, defects: list[str]) -> bytes:
    """A message/* part's content (a forwarded message, a delivery report) written out as MIME again."""
    payload = part.get_payload()
    if isinstance(payload, str):
        return _payload_bytes(part, defects)
    out = io.BytesIO()
    try:
        for inner in payload:
            BytesGenerator(out, mangle_from_=False, policy=_WRITE_POLICY).flatten(inner)
    except Exception:  # an enclosed message we cannot write out must not lose the one around it
        defects.append("An enclosed message could not be written out again; it was left empty.")
        return b""
    return out.getvalue()
