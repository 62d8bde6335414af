"""Strangers' bytes as text: header values, charsets, encoded words (RFC 2047) and MIME parameters (RFC 2231)."""

from __future__ import annotations

import binascii
import codecs
import re
from email.message import Message
from urllib.parse import unquote_to_bytes

# Control characters (a tab aside) that have no place in a header value, a name or a Content-ID.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")

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
# Byte sets to count with bytes.translate(None, delete), which is fast on large bodies.
_BELOW_0XC0, _BELOW_0XE0 = bytes(range(0xC0)), bytes(range(0xE0))
_NOT_ASCII_LETTERS = bytes(byte for byte in range(256) if not (65 <= byte <= 90 or 97 <= byte <= 122))
_CODEC_LABELS = {"cp1251": "windows-1251", "cp1252": "windows-1252", "koi8_r": "koi8-r", "latin-1": "latin-1"}


# --- Raw header values ----------------------------------------------------------------


def raw_values(part: Message, name: str) -> list[str]:
    """Every raw value of a header (as the parser kept it, 8-bit bytes surrogate-escaped), in order."""
    name = name.lower()
    return [value for key, value in part.raw_items() if key.lower() == name]


def raw_value(part: Message, name: str) -> str | None:
    values = raw_values(part, name)
    return values[0] if values else None


def unfolded(raw: str, what: str, defects: list[str]) -> str:
    """A raw header value as text on one line: 8-bit bytes decoded, folding removed; encoded words left as they are."""
    data = as_bytes(raw)
    text = data.decode("ascii") if data.isascii() else decode(data, None, what, defects)
    return text.replace("\r", "").replace("\n", "")


def header_text(raw: str, what: str, defects: list[str]) -> str:
    """A header value for people: unfolded, encoded words decoded, control characters removed."""
    text = decode_words(unfolded(raw, what, defects), what, defects)
    return CONTROL.sub("", text.replace("\t", " ")).strip()


def as_bytes(value: str) -> bytes:
    """The bytes the parser read (it keeps 8-bit bytes as surrogate escapes)."""
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


# --- Charsets -------------------------------------------------------------------------


def decode(data: bytes, declared: str | None, what: str, defects: list[str]) -> str:
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
    non_ascii = len(repaired) - len(repaired.encode("ascii", "ignore"))
    if damaged * 10 <= non_ascii - damaged:
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
    letters = len(data.translate(None, _BELOW_0XC0))
    if letters < 3 or letters <= len(data.translate(None, _NOT_ASCII_LETTERS)):
        return "cp1252"
    upper_half = len(data.translate(None, _BELOW_0XE0))
    return "cp1251" if upper_half * 2 >= letters else "koi8_r"


# --- Encoded words (RFC 2047) and parameters (RFC 2231) ------------------------------


def decode_words(text: str, what: str, defects: list[str]) -> str:
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
        data = decode_base64(match[3].encode("ascii", "ignore")) if match[2] in "bB" else _q_bytes(match[3])
        if pending and (gap.strip() or pending[0].lower() != charset.lower()):
            out.append(decode(bytes(pending[1]), pending[0], what, defects))
            pending = None
        if gap.strip() or (not out and not pending):
            out.append(gap)  # whitespace between two encoded words is not part of the text
        if pending:
            pending[1].extend(data)
        else:
            pending = (charset, bytearray(data))
    if pending:
        out.append(decode(bytes(pending[1]), pending[0], what, defects))
    out.append(text[position:])
    return "".join(out)


def _q_bytes(encoded: str) -> bytes:
    data = encoded.replace("_", " ").encode("utf-8", "surrogateescape")
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda match: bytes([int(match[1], 16)]), data)


def decode_base64(data: bytes) -> bytes:
    """Base64 decoded leniently: stray characters skipped, missing padding added, padded pieces joined."""
    cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
    decoded = bytearray()
    for piece in re.split(rb"=+", cleaned):
        piece = piece[: len(piece) - len(piece) % 4] if len(piece) % 4 == 1 else piece
        if piece:
            decoded += binascii.a2b_base64(piece + b"=" * (-len(piece) % 4))
    return bytes(decoded)


def header_parameters(part: Message, header: str, defects: list[str]) -> tuple[str, dict[str, str]]:
    """A MIME header's value (lower-case) and its decoded parameters, as in Content-Type or Content-Disposition."""
    raw = raw_value(part, header)
    if raw is None:
        return "", {}
    text = unfolded(raw, f"The {header} header", defects)
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
    params = {name: decode_words(value_, f"The {name} parameter", defects) for name, value_ in simple.items()}
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
    return decode(bytes(data), charset or None, f"The {name} parameter", defects)
