"""What a file really is, judged by its bytes alone: its name and declared type are claims checked elsewhere.

`sniff()` reads the opening of the file (and, for ZIP and OLE containers, the
parts it needs), never the whole file into memory. Its answer says the MIME
type, what a person would call it, and `danger` when the bytes are something
that runs: an executable, a script, a page or image that can carry scripts,
an Office file with macros, an installer, an archive holding any of these.
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from typing import BinaryIO

import filetype

# Enough for every signature and for judging text; the rest is never read here.
HEAD_BYTES = 64 * 1024
# How far into an OLE file names are looked for (its directory can sit anywhere).
_SCAN_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Sniffed:
    """The type the bytes say: MIME type, what a person calls it, and why it must never be stored (if so)."""

    mime: str
    label: str
    danger: str = ""
    # Built on a ZIP (OOXML, ODF, EPUB...): a declared application/zip is no lie.
    zip: bool = False


def sniff(file: BinaryIO) -> Sniffed:
    """What the seekable binary `file` is, from its bytes."""
    file.seek(0)
    head = file.read(HEAD_BYTES)
    found = program(head)
    if found:
        return found
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        from integrations.files.zips import sniff_zip  # A container of its own: see zips.py.

        return sniff_zip(file)
    if head.startswith(_OLE_MAGIC):
        return _sniff_ole(file, head)
    if b"%PDF-" in head[:1024]:  # The PDF spec lets junk precede the header; readers accept it.
        return Sniffed("application/pdf", "a PDF document")
    kind = filetype.guess(head)
    if kind is not None:
        if kind.mime in _PACKAGES:
            return Sniffed(kind.mime, _PACKAGES[kind.mime], danger=_PACKAGES[kind.mime])
        return Sniffed(kind.mime, _LABELS.get(kind.mime, f"a {kind.extension.upper()} file"))
    text = _as_text(head)
    if text is not None:
        return _sniff_text(text)
    return Sniffed("application/octet-stream", "binary data of an unknown type")


# --- Programs, by their first bytes --------------------------------------------------

_MACHO = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
_LNK = b"\x4c\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_PACKAGES = {
    "application/x-rpm": "an RPM software package",
    "application/x-deb": "a Debian software package",
    "application/x-google-chrome-extension": "a Chrome browser extension",
}


def program(head: bytes) -> Sniffed | None:
    """The executable or script these opening bytes are, if they are one. Also used on the files inside archives."""
    if head.startswith(b"MZ"):
        return _program("application/x-msdownload", "a Windows executable (MZ/PE header)")
    if head.startswith(b"\x7fELF"):
        return _program("application/x-executable", "a Linux/Unix executable (ELF)")
    if head.startswith(_MACHO):
        return _program("application/x-mach-binary", "a macOS executable (Mach-O)")
    if head.startswith(b"\xca\xfe\xba\xbe") and len(head) >= 8:
        # Java classes and Mach-O universal binaries share the magic: a class
        # file's major version is at least 45, a universal binary's count of
        # architectures is small.
        if int.from_bytes(head[4:8], "big") & 0xFFFF >= 45:
            return _program("application/java-vm", "a compiled Java class")
        return _program("application/x-mach-binary", "a macOS universal executable (Mach-O)")
    if head.startswith(_LNK):
        return _program("application/x-ms-shortcut", "a Windows shortcut (.lnk)")
    body = head
    for bom in _BOMS:
        if body.startswith(bom):
            body = body[len(bom) :]
            break
    if body.startswith(b"#!"):
        interpreter = body[2:].split(b"\n", 1)[0].strip().decode("utf-8", "replace")[:60]
        return _program("text/x-script", f"a script for {interpreter or 'an interpreter'} (it starts with #!)")
    return None


def _program(mime: str, label: str) -> Sniffed:
    return Sniffed(mime, label, danger=label)


# --- OLE compound files: legacy Office documents and Windows installers ------------

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The root storage's class id says what the compound file is; these are Windows Installer's.
# {000C1084-0000-0000-C000-000000000046} (installer), -1086 (patch), -1082 (transform), as stored (little-endian).
_MSI_CLASS_IDS = {bytes.fromhex(f"{low}100c0000000000c000000000000046") for low in ("84", "86", "82")}
# Stream names in the directory, UTF-16LE as stored.
_OLE_STREAMS = {
    "macros": ["_VBA_PROJECT", "Macros"],
    "word": ["WordDocument"],
    "excel": ["Workbook", "Book"],
    "powerpoint": ["PowerPoint Document"],
}


def _sniff_ole(file: BinaryIO, head: bytes) -> Sniffed:
    if _ole_class_id(file, head) in _MSI_CLASS_IDS:
        return _program("application/x-msi", "a Windows Installer package (MSI)")
    found = _ole_streams(file)
    if "macros" in found:
        return _program("application/x-ole-storage", "a legacy Office document with macros (VBA)")
    for key, mime, label in (
        ("word", "application/msword", "a Word 97-2003 document"),
        ("excel", "application/vnd.ms-excel", "an Excel 97-2003 workbook"),
        ("powerpoint", "application/vnd.ms-powerpoint", "a PowerPoint 97-2003 presentation"),
    ):
        if key in found:
            return Sniffed(mime, label)
    return Sniffed("application/x-ole-storage", "an OLE compound file")


def _ole_class_id(file: BinaryIO, head: bytes) -> bytes:
    """The root entry's class id: the first directory entry, at offset 0x50."""
    if len(head) < 52:
        return b""
    sector_size = 1 << int.from_bytes(head[30:32], "little")
    first_directory_sector = int.from_bytes(head[48:52], "little")
    if sector_size not in (512, 4096) or first_directory_sector >= 0xFFFFFFFA:
        return b""
    file.seek((first_directory_sector + 1) * sector_size + 0x50)
    return file.read(16)


def _ole_streams(file: BinaryIO) -> set[str]:
    """Which of the streams of interest the compound file names, by scanning it in chunks."""
    needles = {key: [name.encode("utf-16-le") for name in names] for key, names in _OLE_STREAMS.items()}
    longest = max(len(n) for names in needles.values() for n in names)
    found: set[str] = set()
    file.seek(0)
    tail = b""
    while chunk := file.read(_SCAN_CHUNK):
        window = tail + chunk
        found.update(key for key, names in needles.items() if any(n in window for n in names))
        tail = window[-longest:]
    return found


# --- Text: plain, CSV, markup and scripts ------------------------------------------------

_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
# How browsers recognise a page (WHATWG MIME sniffing): one of these tags first.
_HTML_START = re.compile(
    r"<(!doctype\s+html|html|head|body|script|iframe|h1|div|font|table|a|style|title|b|br|p|!--)[\s>/]"
)
_SVG = re.compile(r"<svg[\s>/]")
_SCRIPT_TAG = re.compile(r"<script[\s>/]")
_SCRIPTS = [
    ("a Windows batch script", re.compile(r"(?im)^\s*@?echo\s+off\b|^\s*for\s+/[fdlr]\b.*%%|^\s*setlocal\b")),
    (
        "a PowerShell script",
        re.compile(
            r"(?im)^\s*\[cmdletbinding\(|^\s*#requires\s+-|\binvoke-expression\b|\biex\s*\(|"
            r"\bnew-object\s+(system\.)?net\.webclient\b|\.downloadstring\s*\(|-encodedcommand\b|"
            r"\bset-executionpolicy\b"
        ),
    ),
    (
        "a Windows Script Host script (VBScript or JScript)",
        re.compile(r"(?i)\bwscript\.(shell|createobject|echo|quit|arguments)\b|\bcreateobject\s*\(|\bactivexobject\b"),
    ),
]


def _as_text(head: bytes) -> str | None:
    """The opening decoded as text, or None when the bytes are not text."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if head.startswith(bom):
            return head[len(bom) :].decode(encoding, "replace")
    if _CONTROL.search(head):
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # A character cut by the end of the sample.
            return head[: exc.start].decode("utf-8")
    # Not UTF-8, yet no control characters: a single-byte encoding (Latin-1, Windows-1252).
    return head.decode("latin-1")


def _sniff_text(text: str) -> Sniffed:
    opening = text.lstrip().lower()
    if text.startswith("#!"):  # Met here when the bytes were UTF-16.
        return _program("text/x-script", "a script (it starts with #!)")
    if _SVG.search(opening[:4096]):
        scripted = " with a <script> element" if _SCRIPT_TAG.search(opening) else ""
        label = f"an SVG image{scripted}, which can carry scripts"
        return Sniffed("image/svg+xml", label, danger=label)
    if _HTML_START.match(opening) or (opening.startswith("<?xml") and "<html" in opening[:4096]):
        label = "an HTML page, which can carry scripts"
        return Sniffed("text/html", label, danger=label)
    if _SCRIPT_TAG.search(opening):
        label = "text with an HTML <script> element"
        return Sniffed("text/html", label, danger=label)
    for label, pattern in _SCRIPTS:
        if pattern.search(text):
            return Sniffed("text/x-script", label, danger=label)
    if opening.startswith("<?xml"):
        return Sniffed("application/xml", "an XML document")
    if _looks_like_csv(text):
        return Sniffed("text/csv", "CSV text")
    return Sniffed("text/plain", "plain text")


def _looks_like_csv(text: str) -> bool:
    """Two lines or more, split by one delimiter into the same number (2+) of fields."""
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) > 1 and len(text) >= HEAD_BYTES - 4:
        lines = lines[:-1]  # The sample may end mid-line.
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return len(widths) == 1 and widths.pop() >= 2


_LABELS = {
    "image/png": "a PNG image",
    "image/jpeg": "a JPEG image",
    "image/gif": "a GIF image",
    "image/webp": "a WebP image",
    "image/tiff": "a TIFF image",
    "image/bmp": "a BMP image",
    "image/heic": "a HEIC image",
    "application/gzip": "a gzip archive",
    "application/x-tar": "a tar archive",
    "application/x-rar-compressed": "a RAR archive",
    "application/x-7z-compressed": "a 7-Zip archive",
    "application/rtf": "an RTF document",
}
