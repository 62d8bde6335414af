"""Turning raw RFC 5322 bytes into the parts Mailroom stores.

Real mail is messy: encoded words (RFC 2047), encoded parameters (RFC 2231),
wrong or missing charsets, nested multiparts, forwarded messages, HTML only.
Parsing holds on all of it, and refuses (Unparseable) only what is not a
mail message at all, with a reason a person can act on.

The stdlib parser (with the compat32 policy) finds the MIME structure; every
header value, parameter and body is then decoded here from its raw bytes.
policy.default was tried first and lost parts on real mail: it re-renders
Content-Type before the boundary is read (an unquoted boundary holding "=" no
longer matches), turns undeclared 8-bit header text into U+FFFD, and its
header classes raise on some malformed values. Each survivable problem is
recorded in `defects` as a sentence.
"""

from __future__ import annotations

import binascii
import codecs
import io
import mimetypes
import os
import quopri
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes

from actions.intake.htmltext import html_to_text


class Unparseable(ValueError):
    """The bytes are not a message Mailroom can store as mail; the text says why."""


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str = ""
    inline: bool = False


@dataclass
class ParsedMessage:
    message_id: str  # as in the header, with its angle brackets; "" when the message has none
    in_reply_to: str
    references: list[str]
    from_name: str
    from_address: str
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    subject: str
    date: datetime | None  # aware
    text_body: str  # the text part; the HTML part made readable when there is no (or an empty) text part
    html_body: str
    headers: list[tuple[str, str]]  # decoded, unfolded, in order
    attachments: list[ParsedAttachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)  # what was wrong but survivable
    content_type: str = ""  # of the whole message, lower-case, without parameters
    report_type: str = ""  # the report-type of a multipart/report ("delivery-status"), lower-case


MAX_HEADERS = 200
MAX_HEADER_CHARS = 2000
MAX_SUBJECT_CHARS = 998
MAX_MESSAGE_ID_CHARS = 998
MAX_REFERENCES = 100
MAX_FILENAME_CHARS = 255
MAX_CONTENT_ID_CHARS = 255
MAX_NAME_CHARS = 254
MAX_ADDRESS_CHARS = 254
MAX_DEPTH = 50
MAX_DEFECTS = 100

# How far into the message the header block is looked for, and how many lines
# ahead a stray line may be followed by more headers and still count as inside them.
_HEAD_BYTES = 1024 * 1024
_STRAY_LINE_LOOKAHEAD = 20

_HEADER_LINE = re.compile(rb"([!-9;-~]+)([ \t]*):")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_COMMENT = re.compile(r"\([^()]*\)")
_ANGLED = re.compile(r"<([^<>]*)>")
_ADDR_SPEC = re.compile(r"[^\s@<>()\[\]\\,;:\"]+@(?:[\w-]+(?:\.[\w-]+)*|\[[^\[\]\s]+\])")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A line "--boundary" followed by a part's MIME header, in a multipart whose declared boundary never appears.
_BOUNDARY_IN_USE = re.compile(rb"^--([^\s\"\\]{1,200})[ \t]*\r?\nContent-[\w-]+[ \t]*:", re.MULTILINE | re.IGNORECASE)
_HTML_START = re.compile(r"<(?:!doctype|html|head|body|div|p|br|table|span|font)\b", re.IGNORECASE)
_UU_BEGIN = re.compile(rb"^begin(?:-base64)?\s+[0-7]{3,4}\s+(.+)$")
# Filenames: invisible characters that reorder text can disguise "gpj.exe" as "exe.jpg".
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))

# Charset names Python does not know, and names whose everyday use is a
# superset: Outlook's "gb2312" is GBK, "ks_c_5601-1987" is Windows' cp949...
_CHARSET_ALIASES = {"windows-874": "cp874", "x-sjis": "cp932", "x-euc-jp": "euc_jp", "ks_c_5601": "cp949"}
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "iso2022_jp": "iso2022_jp_ext",
}
_SINGLE_BYTE_CODECS = ("iso8859", "cp125", "koi8", "mac", "latin", "cp874", "tis-620")
# Not charsets: they turn text like "\ud800" into characters no database column takes.
_REFUSED_CODECS = {"unicode-escape", "raw-unicode-escape"}
_CODEC_LABELS = {"cp1251": "windows-1251", "cp1252": "windows-1252", "koi8_r": "koi8-r", "latin-1": "latin-1"}

_DEFECT_SENTENCES = {
    "CloseBoundaryNotFoundDefect": "A multipart section has no closing boundary; its last part runs to the end.",
    "StartBoundaryNotFoundDefect": "A multipart section's boundary never appears, so its parts cannot be separated.",
    "MultipartInvariantViolationDefect": "",  # always comes with the one above
    "MissingHeaderBodySeparatorDefect": "A part has no blank line between its headers and its body.",
    "FirstHeaderLineIsContinuationDefect": "The first header line is indented like a continuation line.",
    "InvalidMultipartContentTransferEncodingDefect": "A multipart section declares a transfer encoding.",
    "NoBoundaryInMultipartDefect": "A multipart section has no boundary parameter.",
}
# Names for attachments sent without one; other types get "attachment" and their usual extension.
_UNNAMED = {
    "message/rfc822": "message.eml",
    "message/global": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/disposition-notification": "disposition-notification.txt",
    "message/feedback-report": "feedback-report.txt",
    "text/plain": "attachment.txt",
}


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one message; Unparseable when it is not mail we can store."""
    try:
        return _parse(raw)
    except Unparseable:
        raise
    except Exception as exc:  # intake must never crash on a stranger's bytes
        raise Unparseable(f"Parsing failed: {exc}") from exc


def _parse(raw: bytes) -> ParsedMessage:
    if not raw or not raw.strip():
        raise Unparseable("The message is empty.")
    defects: list[str] = []
    repaired = _repaired(raw, defects)
    try:
        message = BytesParser(policy=policy.compat32).parsebytes(repaired)
    except RecursionError:
        # Multiparts nested thousands deep (a known way to crash mail software): keep the headers, the body as text.
        defects.append("The MIME structure is nested too deeply to read; the body was kept as plain text.")
        message = BytesParser(policy=policy.compat32).parsebytes(repaired, headersonly=True)
    headers = _decoded_headers(message, defects)

    from_name, from_address = _first_mailbox(message, "From", defects)
    if not from_address:
        from_name, from_address = _first_mailbox(message, "Sender", defects)
    if not from_address:
        raise Unparseable("The message has no From address, so there is nobody to answer.")

    subject = _text(_raw(message, "Subject") or "", "The Subject header", defects)
    if len(subject) > MAX_SUBJECT_CHARS:
        defects.append(f"The subject was longer than {MAX_SUBJECT_CHARS} characters and was cut.")
        subject = subject[:MAX_SUBJECT_CHARS]

    body = _Body(defects)
    body.walk(message)
    text_body, html_body = body.text, body.html
    if not text_body.strip() and html_body:
        # Stored mail must always be readable as text: HTML-only mail gets its HTML as text.
        text_body = html_to_text(html_body)

    _, type_params = _parameters(_raw(message, "Content-Type"), defects)
    references = _message_ids(_structured(message, "References", defects), "References", defects)
    if len(references) > MAX_REFERENCES:
        # RFC 5322 lets References be trimmed: the thread's first message and the latest ones matter.
        defects.append(f"References held {len(references)} ids; the first and the last {MAX_REFERENCES - 1} are kept.")
        references = references[:1] + references[-(MAX_REFERENCES - 1) :]
    return ParsedMessage(
        message_id=_message_id(_structured(message, "Message-ID", defects), "Message-ID", defects),
        in_reply_to=_message_id(_structured(message, "In-Reply-To", defects), "In-Reply-To", defects),
        references=references,
        from_name=from_name,
        from_address=from_address,
        to=_address_list(message, "To", defects),
        cc=_address_list(message, "Cc", defects),
        reply_to=_address_list(message, "Reply-To", defects),
        subject=subject,
        date=_date(_structured(message, "Date", defects), defects),
        text_body=text_body,
        html_body=html_body,
        headers=headers,
        attachments=body.attachments,
        defects=_sentences(defects, message),
        content_type=message.get_content_type(),
        report_type=type_params.get("report-type", "").lower(),
    )


# --- The header block ------------------------------------------------------------------


def _repaired(raw: bytes, defects: list[str]) -> bytes:
    """The message with its header block made parseable, or Unparseable when it has none.

    The stdlib parser ends the headers at the first line that is not a header,
    so one stray line (or "Subject : x", obsolete RFC 822 syntax) would move
    From and Subject into the body. Stray lines followed by more headers are
    dropped instead, and a missing blank line before the body is added.
    """
    head = raw[:_HEAD_BYTES]
    lines = head.splitlines(keepends=True)
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start:
        defects.append("The message starts with blank lines before its headers.")
    if start < len(lines) and lines[start].startswith(b"From ") and not _HEADER_LINE.match(lines[start]):
        start += 1  # an mbox separator line ("From sender date"), not part of the message
    if start >= len(lines) or not _HEADER_LINE.match(lines[start]):
        raise Unparseable("The data does not begin with mail headers (Name: value lines), so it is not an email.")

    kept: list[bytes] = []
    index = start
    while index < len(lines):
        line = lines[index]
        if not line.rstrip(b"\r\n"):
            break  # the blank line that ends the headers
        header = _HEADER_LINE.match(line)
        if header and header[2]:
            line = header[1] + b":" + line[header.end() :]
        elif not header and not line.startswith((b" ", b"\t")):
            ahead = lines[index + 1 : index + 1 + _STRAY_LINE_LOOKAHEAD]
            if not any(_HEADER_LINE.match(later) for later in _until_blank(ahead)):
                defects.append("There is no blank line between the headers and the body.")
                kept.append(line[len(line.rstrip(b"\r\n")) :] or b"\r\n")
                break
            defects.append(f"A line among the headers is not a header and was skipped: {_shown(line)}.")
            index += 1
            continue
        kept.append(line)
        index += 1
    consumed = sum(len(line) for line in lines[:index])
    return b"".join(kept) + raw[consumed:]


def _until_blank(lines: list[bytes]) -> list[bytes]:
    for position, line in enumerate(lines):
        if not line.rstrip(b"\r\n"):
            return lines[:position]
    return lines


def _shown(line: bytes) -> str:
    """A line of strangers' bytes, short and safe to show in a sentence."""
    text = line.decode("utf-8", "replace").strip()
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def _raw_all(part: Message, name: str) -> list[str]:
    """Every raw value of a header (as the parser kept it, 8-bit bytes surrogate-escaped), in order."""
    name = name.lower()
    return [value for key, value in part.raw_items() if key.lower() == name]


def _raw(part: Message, name: str) -> str | None:
    values = _raw_all(part, name)
    return values[0] if values else None


def _decoded_headers(message: Message, defects: list[str]) -> list[tuple[str, str]]:
    items = list(message.raw_items())
    if len(items) > MAX_HEADERS:
        defects.append(f"The message has {len(items)} headers; only the first {MAX_HEADERS} were kept.")
    headers = []
    cut = 0
    for name, value in items[:MAX_HEADERS]:
        text = _text(value, f"The {name} header", defects)
        if len(text) > MAX_HEADER_CHARS:
            cut += 1
            text = text[:MAX_HEADER_CHARS]
        headers.append((name, text))
    if cut:
        defects.append(f"{cut} header value(s) were longer than {MAX_HEADER_CHARS} characters and were cut.")
    return headers


def _unfolded(raw: str, what: str, defects: list[str]) -> str:
    """A raw header value as text on one line: 8-bit bytes decoded, folding removed; encoded words left as they are."""
    data = _as_bytes(raw)
    text = data.decode("ascii") if data.isascii() else _decode(data, None, what, defects)
    return text.replace("\r", "").replace("\n", "")


def _text(raw: str, what: str, defects: list[str]) -> str:
    """A header value for people: unfolded, encoded words decoded, control characters removed."""
    text = _decode_words(_unfolded(raw, what, defects), what, defects)
    return _CONTROL.sub("", text.replace("\t", " ")).strip()


def _structured(message: Message, name: str, defects: list[str]) -> str:
    raw = _raw(message, name)
    return _unfolded(raw, f"The {name} header", defects) if raw is not None else ""


def _as_bytes(value: str) -> bytes:
    """The bytes the parser read (it keeps 8-bit bytes as surrogate escapes)."""
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


# --- Charsets -------------------------------------------------------------------------


def _decode(data: bytes, declared: str | None, what: str, defects: list[str]) -> str:
    """Bytes as text: the declared charset when it fits, else UTF-8, else a single-byte guess. Never raises."""
    attempts = _codecs(declared)
    for codec in attempts:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec.startswith(_SINGLE_BYTE_CODECS) and not data.isascii() and _is_utf8(data):
            # Valid multi-byte UTF-8 is almost never meant as Latin text: the label is wrong.
            defects.append(f"{what} says it is {declared} but is UTF-8; it was read as UTF-8.")
            return data.decode("utf-8")
        return text
    text, used = _guess(data)
    if attempts:
        defects.append(f"{what} is not valid {declared}; it was read as {used}.")
    elif declared:
        defects.append(f"{what} names the unknown charset {declared[:40]!r}; it was read as {used}.")
    elif used not in ("utf-8", "ascii"):
        defects.append(f"{what} has 8-bit text without a charset; it was read as {used}.")
    return text


def _codecs(declared: str | None) -> list[str]:
    """The Python codecs to try for a declared charset, its everyday superset first; none when unknown."""
    if not declared:
        return []
    name = declared.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        b"".decode(name)  # LookupError for unknown names and for codecs that are not charsets (base64, zlib)
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):
        return []
    if codec in _REFUSED_CODECS:
        return []
    return list(dict.fromkeys([_SUPERSETS.get(codec, codec), codec]))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _guess(data: bytes) -> tuple[str, str]:
    """Undeclared or wrongly declared bytes as text, and the name of the charset that read them."""
    if _is_utf8(data):
        return data.decode("utf-8"), "utf-8"
    repaired = data.decode("utf-8", "replace")
    damaged = repaired.count("\ufffd")
    if damaged * 10 <= sum(1 for char in repaired if ord(char) > 127) - damaged:
        # Mostly valid UTF-8 with a few broken bytes (cut mid-character, one stray byte).
        return repaired, "UTF-8 (broken bytes replaced)"
    codec = _single_byte_guess(data)
    try:
        return data.decode(codec), _CODEC_LABELS[codec]
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _single_byte_guess(data: bytes) -> str:
    """windows-1251 or koi8-r when the 8-bit bytes look like Cyrillic words, else windows-1252.

    Western text has a few accented letters among ASCII ones; Cyrillic in a
    single-byte charset is mostly bytes from 0xC0 up. Lower-case letters (most
    of any text) sit at 0xE0-0xFF in windows-1251 and at 0xC0-0xDF in koi8-r.
    """
    letters = len(data.translate(None, bytes(range(0xC0))))
    ascii_letters = sum(1 for byte in data if 65 <= byte <= 90 or 97 <= byte <= 122)
    if letters < 3 or letters <= ascii_letters:
        return "cp1252"
    upper_half = len(data.translate(None, bytes(range(0xE0))))
    return "cp1251" if upper_half * 2 >= letters else "koi8_r"


# --- Encoded words (RFC 2047) and parameters (RFC 2231) ------------------------------


def _decode_words(text: str, what: str, defects: list[str]) -> str:
    """Decode encoded words, leniently: bad padding, unknown charsets, words glued to text, split characters."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None  # adjacent words in one charset are decoded together
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[position : match.start()]
        position = match.end()
        charset = match[1].split("*")[0]  # "utf-8*en" carries a language
        data = _base64(match[3].encode("ascii", "ignore")) if match[2] in "bB" else _q_bytes(match[3])
        if pending and (gap.strip() or pending[0].lower() != charset.lower()):
            out.append(_decode(bytes(pending[1]), pending[0], what, defects))
            pending = None
        if gap.strip() or (not out and not pending):
            out.append(gap)  # whitespace between two encoded words is not part of the text
        if pending:
            pending[1].extend(data)
        else:
            pending = (charset, bytearray(data))
    if pending:
        out.append(_decode(bytes(pending[1]), pending[0], what, defects))
    out.append(text[position:])
    return "".join(out)


def _q_bytes(encoded: str) -> bytes:
    data = encoded.replace("_", " ").encode("utf-8", "surrogateescape")
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda match: bytes([int(match[1], 16)]), data)


def _base64(data: bytes) -> bytes:
    """Base64 decoded leniently: stray characters skipped, missing padding added, padded pieces joined."""
    cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
    decoded = bytearray()
    for piece in re.split(rb"=+", cleaned):
        piece = piece[: len(piece) - len(piece) % 4] if len(piece) % 4 == 1 else piece
        if piece:
            decoded += binascii.a2b_base64(piece + b"=" * (-len(piece) % 4))
    return bytes(decoded)


def _parameters(raw: str | None, defects: list[str]) -> tuple[str, dict[str, str]]:
    """A MIME header's value (lower-case) and its decoded parameters, as in Content-Type or Content-Disposition."""
    if raw is None:
        return "", {}
    text = _unfolded(raw, "A MIME header", defects)
    value, _, rest = text.partition(";")
    simple: dict[str, str] = {}
    extended: dict[str, dict[int, tuple[bool, str]]] = {}
    for match in re.finditer(r"""([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*(?:"|$)|[^;]*)""", rest):
        name, quoted = match[1].lower(), match[2].strip()
        if quoted.startswith('"'):
            quoted = re.sub(r"\\(.)", r"\1", quoted[1:].removesuffix('"'))
        continued = re.fullmatch(r"(.+?)\*(\d{1,3})?(\*)?", name)
        if continued:
            pieces = extended.setdefault(continued[1], {})
            pieces.setdefault(int(continued[2] or 0), (continued[3] is not None or continued[2] is None, quoted))
        else:
            simple.setdefault(name, quoted)
    params = {name: _decode_words(value_, f"The {name} parameter", defects) for name, value_ in simple.items()}
    for name, pieces in extended.items():
        params[name] = _rfc2231(name, [pieces[index] for index in sorted(pieces)], defects)
    return value.strip().lower(), params


def _rfc2231(name: str, pieces: list[tuple[bool, str]], defects: list[str]) -> str:
    """Join an RFC 2231 parameter's pieces (name*0*=utf-8''..., name*1*=...) and decode them."""
    charset = ""
    data = bytearray()
    for position, (encoded, text) in enumerate(pieces):
        if encoded and position == 0 and text.count("'") >= 2:
            charset, _, text = text.partition("'")
            text = text.partition("'")[2]  # the language tag is of no use here
        data += unquote_to_bytes(text) if encoded else text.encode("utf-8")
    return _decode(bytes(data), charset or None, f"The {name} parameter", defects)


# --- Addresses, ids, dates --------------------------------------------------------------


def _split_addresses(value: str) -> list[str]:
    """An address list split at commas outside quotes, angle brackets and comments; group names dropped."""
    items: list[str] = []
    current: list[str] = []
    quoted, escaped, has_at = False, False, False
    angle = comment = 0
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"' and not comment:
            quoted = not quoted
        elif not quoted:
            if char == "(":
                comment += 1
            elif char == ")" and comment:
                comment -= 1
            elif char == "<" and not comment:
                angle += 1
            elif char == ">" and angle and not comment:
                angle -= 1
            elif not angle and not comment and char in ",;":
                items.append("".join(current))
                current, has_at = [], False
                continue
            elif not angle and not comment and char == ":" and not has_at:
                current = []  # "Group name:" before a group's addresses
                continue
        has_at = has_at or char == "@"
        current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _mailboxes(value: str, header: str, defects: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs from an address header; unusable entries are skipped and recorded."""
    found = []
    for item in _split_addresses(value):
        if "<" in item:
            name, _, address = item.rpartition("<")
            address = address.split(">", 1)[0]
        else:
            name, address = "", item
        comments = _COMMENT.findall(address)
        address = "".join(_COMMENT.sub("", address).split()).rstrip(".")
        if address.startswith("@") and ":" in address:
            address = address.split(":", 1)[1]  # an obsolete source route (<@relay:user@host>)
        name = name.strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        elif not name and comments:
            name = comments[-1][1:-1]  # "user@host (Name)"
        if not _ADDR_SPEC.fullmatch(address) or len(address) > MAX_ADDRESS_CHARS:
            defects.append(f"The {header} header holds an address that is not usable: {address[:80]!r}.")
            continue
        local, _, domain = address.rpartition("@")
        name = _CONTROL.sub("", _decode_words(name, f"The {header} header", defects).replace("\t", " ")).strip()
        found.append((name[:MAX_NAME_CHARS], f"{local}@{domain.lower()}"))
    return found


def _first_mailbox(message: Message, header: str, defects: list[str]) -> tuple[str, str]:
    for raw in _raw_all(message, header):
        mailboxes = _mailboxes(_unfolded(raw, f"The {header} header", defects), header, defects)
        if mailboxes:
            return mailboxes[0]
    return "", ""


def _address_list(message: Message, header: str, defects: list[str]) -> list[str]:
    addresses: dict[str, str] = {}
    for raw in _raw_all(message, header):
        for _, address in _mailboxes(_unfolded(raw, f"The {header} header", defects), header, defects):
            addresses.setdefault(address.lower(), address)
    return list(addresses.values())


def _message_ids(value: str, header: str, defects: list[str]) -> list[str]:
    """The <id>s in a header, whitespace and comments inside them removed, garbage around them ignored."""
    ids = []
    for inner in _ANGLED.findall(value):
        inner = "".join(_COMMENT.sub("", inner).split())
        if not inner:
            continue
        message_id = f"<{inner}>"
        if len(message_id) > MAX_MESSAGE_ID_CHARS:
            defects.append(
                f"An id in the {header} header was longer than {MAX_MESSAGE_ID_CHARS} characters; it was cut."
            )
            message_id = message_id[: MAX_MESSAGE_ID_CHARS - 1] + ">"
        ids.append(message_id)
    return ids


def _message_id(value: str, header: str, defects: list[str]) -> str:
    ids = _message_ids(value, header, defects)
    if ids:
        return ids[0]
    bare = _COMMENT.sub("", value).replace("<", " ").replace(">", " ").split()
    if not bare:
        return ""
    defects.append(f"The {header} header has no angle brackets; they were added.")
    return _message_ids(f"<{bare[0]}>", header, defects)[0]


def _date(value: str, defects: list[str]) -> datetime | None:
    if not value.strip():
        defects.append("The message has no Date header.")
        return None
    # Obsolete syntax: comments anywhere, spaces around the time's colons ("09 :  55 : 06").
    cleaned = re.sub(r"\s*:\s*", ":", " ".join(_COMMENT.sub(" ", value).split()))
    try:
        date = parsedate_to_datetime(cleaned)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append(f"The Date header is not a date that can be read: {value.strip()[:80]!r}.")
        return None
    return date if date.tzinfo else date.replace(tzinfo=UTC)


def _sentences(defects: list[str], message: Message) -> list[str]:
    """Our defects and the structural ones the stdlib parser noticed, each once, as sentences."""
    for part in message.walk():
        for defect in part.defects:
            name = type(defect).__name__
            sentence = _DEFECT_SENTENCES.get(name)
            if sentence is None:
                words = re.sub(r"(?<!^)(?=[A-Z])", " ", name.removesuffix("Defect")).lower()
                sentence = f"The MIME structure has a problem: {words}."
            if sentence:
                defects.append(sentence)
    unique = list(dict.fromkeys(defects))
    if len(unique) > MAX_DEFECTS:
        unique = [*unique[: MAX_DEFECTS - 1], f"... and {len(unique) - MAX_DEFECTS + 1} more problems."]
    return unique


# --- Bodies and attachments -------------------------------------------------------------


class _Body:
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
        disposition, params = _parameters(_raw(part, "Content-Disposition"), self.defects)
        _, type_params = _parameters(_raw(part, "Content-Type"), self.defects)
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
        text = _decode(data, charset, f"The {part.get_content_type()} part", self.defects)
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
            inner = part.get_payload(0) if part.is_multipart() else Message()
            subject = _text(_raw(inner, "Subject") or "", "An enclosed message's Subject", self.defects)
            # A subject is not a path: its slashes must not be taken for folders.
            name = f"{subject.replace('/', '-').replace(chr(92), '-')}.eml" if subject else ""
        content_id = "".join((_raw(part, "Content-ID") or "").split()).strip("<>")
        if len(content_id) > MAX_CONTENT_ID_CHARS:
            self.defects.append(f"A Content-ID was longer than {MAX_CONTENT_ID_CHARS} characters and was cut.")
            content_id = content_id[:MAX_CONTENT_ID_CHARS]
        self.attachments.append(
            ParsedAttachment(
                filename=safe_filename(name, content_type),
                content_type=content_type,
                content=content,
                content_id=_CONTROL.sub("", content_id),
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


_UUENCODINGS = {"x-uuencode", "uuencode", "uue", "x-uue"}


def _transfer_encoding(part: Message) -> str:
    words = (_raw(part, "Content-Transfer-Encoding") or "").replace(";", " ").split()
    return words[0].lower() if words else ""


def _payload_bytes(part: Message, defects: list[str]) -> bytes:
    """A leaf part's content with its transfer encoding (base64, quoted-printable, uuencode) undone."""
    data = _raw_payload(part)
    encoding = _transfer_encoding(part)
    if encoding == "base64":
        return _base64(data)
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
    return _as_bytes(payload) if isinstance(payload, str) else b""


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
                decoded += binascii.a2b_uu(line[: ((line[0] - 32) & 63) * 4 // 3 + 2])
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


_WRITE_POLICY = policy.compat32.clone(linesep="\r\n", max_line_length=None)
