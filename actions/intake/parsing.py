"""Turning raw RFC 5322 bytes into the parts Mailroom stores.

Real mail is messy: encoded words (RFC 2047), encoded parameters (RFC 2231),
wrong or missing charsets, nested multiparts, forwarded messages, HTML only.
Parsing holds on all of it, and refuses (Unparseable) only what is not a
mail message at all, with a reason a person can act on.

The stdlib parser (with the compat32 policy) finds the MIME structure; every
header value, parameter and body is then decoded from its raw bytes
(actions.intake.charsets), and the parts are walked in actions.intake.parts.
policy.default was tried first and lost parts on real mail: it re-renders
Content-Type before the boundary is read (an unquoted boundary holding "=" no
longer matches), turns undeclared 8-bit header text into U+FFFD, and its
header classes raise on some malformed values. Each survivable problem is
recorded in `defects` as a sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

from actions.intake.charsets import (
    CONTROL,
    decode_words,
    header_parameters,
    header_text,
    raw_value,
    raw_values,
    unfolded,
)
from actions.intake.htmltext import html_to_text
from actions.intake.parts import Body, ParsedAttachment, safe_filename

# ParsedAttachment and safe_filename live with the MIME parts; intake and tests know them from here.
__all__ = ["ParsedAttachment", "ParsedMessage", "Unparseable", "parse_message", "safe_filename"]


class Unparseable(ValueError):
    """The bytes are not a message Mailroom can store as mail; the text says why."""


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
MAX_NAME_CHARS = 254
MAX_ADDRESS_CHARS = 254
MAX_DEFECTS = 100

# How far into the message the header block is looked for, and how many lines
# ahead a stray line may be followed by more headers and still count as inside them.
_HEAD_BYTES = 1024 * 1024
_STRAY_LINE_LOOKAHEAD = 20

_HEADER_LINE = re.compile(rb"([!-9;-~]+)([ \t]*):")
_COMMENT = re.compile(r"\([^()]*\)")
_ANGLED = re.compile(r"<([^<>]*)>")
_ADDR_SPEC = re.compile(r"[^\s@<>()\[\]\\,;:\"]+@(?:[\w-]+(?:\.[\w-]+)*|\[[^\[\]\s]+\])")

_DEFECT_SENTENCES = {
    "CloseBoundaryNotFoundDefect": "A multipart section has no closing boundary; its last part runs to the end.",
    "StartBoundaryNotFoundDefect": "A multipart section's boundary never appears, so its parts cannot be separated.",
    "MultipartInvariantViolationDefect": "",  # always comes with the one above
    "MissingHeaderBodySeparatorDefect": "A part has no blank line between its headers and its body.",
    "FirstHeaderLineIsContinuationDefect": "The first header line is indented like a continuation line.",
    "InvalidMultipartContentTransferEncodingDefect": "A multipart section declares a transfer encoding.",
    "NoBoundaryInMultipartDefect": "A multipart section has no boundary parameter.",
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

    subject = header_text(raw_value(message, "Subject") or "", "The Subject header", defects)
    if len(subject) > MAX_SUBJECT_CHARS:
        defects.append(f"The subject was longer than {MAX_SUBJECT_CHARS} characters and was cut.")
        subject = subject[:MAX_SUBJECT_CHARS]

    body = Body(defects)
    body.walk(message)
    text_body, html_body = body.text, body.html
    if not text_body.strip() and html_body:
        # Stored mail must always be readable as text: HTML-only mail gets its HTML as text.
        text_body = html_to_text(html_body)

    _, type_params = header_parameters(message, "Content-Type", defects)
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


def _decoded_headers(message: Message, defects: list[str]) -> list[tuple[str, str]]:
    items = list(message.raw_items())
    if len(items) > MAX_HEADERS:
        defects.append(f"The message has {len(items)} headers; only the first {MAX_HEADERS} were kept.")
    headers = []
    cut = 0
    for name, value in items[:MAX_HEADERS]:
        text = header_text(value, f"The {name} header", defects)
        if len(text) > MAX_HEADER_CHARS:
            cut += 1
            text = text[:MAX_HEADER_CHARS]
        headers.append((name, text))
    if cut:
        defects.append(f"{cut} header value(s) were longer than {MAX_HEADER_CHARS} characters and were cut.")
    return headers


def _structured(message: Message, name: str, defects: list[str]) -> str:
    raw = raw_value(message, name)
    return unfolded(raw, f"The {name} header", defects) if raw is not None else ""


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
        name = CONTROL.sub("", decode_words(name, f"The {header} header", defects).replace("\t", " ")).strip()
        found.append((name[:MAX_NAME_CHARS], f"{local}@{domain.lower()}"))
    return found


def _first_mailbox(message: Message, header: str, defects: list[str]) -> tuple[str, str]:
    for raw in raw_values(message, header):
        mailboxes = _mailboxes(unfolded(raw, f"The {header} header", defects), header, defects)
        if mailboxes:
            return mailboxes[0]
    return "", ""


def _address_list(message: Message, header: str, defects: list[str]) -> list[str]:
    addresses: dict[str, str] = {}
    for raw in raw_values(message, header):
        for _, address in _mailboxes(unfolded(raw, f"The {header} header", defects), header, defects):
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
