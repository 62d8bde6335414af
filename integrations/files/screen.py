"""Whether a file may be uploaded: its size, what its bytes are, and whether its name and declared type agree.

The bytes decide. A file that is or holds something that runs is refused
whatever its name; a type outside UPLOAD_ALLOWED_TYPES is refused as the
bytes say it is; a name or declared type that contradicts the bytes is
refused too (a report.pdf that is a ZIP is not a PDF someone can open).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.files import File
from django.template.defaultfilters import filesizeformat

from integrations.files.sniff import Sniffed, sniff
from integrations.files.store import storage_errors
from integrations.files.zips import DANGEROUS_EXTENSIONS, extension

# Declared types that claim nothing: mail clients send them for "some file".
_GENERIC = {"", "application/octet-stream", "binary/octet-stream", "application/binary", "application/unknown"}
_GENERIC |= {"application/x-download", "application/force-download", "application/download"}
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/vnd.microsoft.icon": "image/x-icon",
    "application/x-pdf": "application/pdf",
    "application/acrobat": "application/pdf",
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
    "text/comma-separated-values": "text/csv",
    "text/x-csv": "text/csv",
    "application/csv": "text/csv",
}
# (what the bytes are, what was claimed) pairs that are no lie: Windows sends CSV as an Excel type.
_AGREE = {("text/csv", "application/vnd.ms-excel")}
_TEXTUAL = {"application/json", "application/xml", "application/x-ndjson", "application/yaml", "application/x-yaml"}
# What a file name claims, by extension. Names not listed claim nothing.
_CLAIMS = {
    **dict.fromkeys(("txt", "text", "log", "md", "ini", "cfg", "conf"), "text/plain"),
    **dict.fromkeys(("csv", "tsv"), "text/csv"),
    "json": "application/json",
    "xml": "application/xml",
    "pdf": "application/pdf",
    **dict.fromkeys(("jpg", "jpeg", "jpe", "jfif"), "image/jpeg"),
    **{ext: f"image/{ext}" for ext in ("png", "gif", "webp", "bmp", "tiff", "heic", "avif")},
    "tif": "image/tiff",
    "ico": "image/x-icon",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "epub": "application/epub+zip",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "rtf": "application/rtf",
    "zip": "application/zip",
    **dict.fromkeys(("gz", "tgz"), "application/gzip"),
    "tar": "application/x-tar",
    "7z": "application/x-7z-compressed",
    "rar": "application/x-rar-compressed",
}


@dataclass(frozen=True)
class Verdict:
    """What a file was found to be, and why it may not be uploaded (empty when it may)."""

    sniffed: Sniffed | None
    refusal: str = ""


def type_allowed(content_type: str, allowed: list[str]) -> bool:
    """Whether a MIME type matches one of the allowed entries: exact, "type/*" or "prefix.*"."""
    kind = content_type.split(";")[0].strip().lower()
    for entry in (entry.strip().lower() for entry in allowed):
        if kind == entry or (entry.endswith("*") and kind.startswith(entry[:-1])):
            return True
    return False


def screen(name: str, declared_type: str, file: File, *, max_bytes: int, allowed: list[str]) -> Verdict:
    """Judge the stored `file` of an attachment called `name`, sent as `declared_type`."""
    with storage_errors(f"reading {name}"):
        try:
            size = file.size  # The storage's own count: nothing is read yet.
        except FileNotFoundError:
            return Verdict(None, f"{name} has lost its stored content")
        if size > max_bytes:
            return Verdict(
                None, f"{name} is {filesizeformat(size)}, over the upload limit of {filesizeformat(max_bytes)}"
            )
        with file.open("rb"):
            found = sniff(file)
    return Verdict(found, _refusal(name, declared_type, found, allowed))


def _refusal(name: str, declared_type: str, found: Sniffed, allowed: list[str]) -> str:
    if found.danger:
        return f"{name} is {found.danger}, which is never uploaded"
    ext = extension(name)
    if ext in DANGEROUS_EXTENSIONS:
        what = DANGEROUS_EXTENSIONS[ext]
        return f"{name} is named as {what} (.{ext}), which is never uploaded; its bytes are {found.label}"
    if not type_allowed(found.mime, allowed):
        return f"{name} is {found.label} ({found.mime}), which is not allowed for upload"
    claimed = _CLAIMS.get(ext, "")
    if not _agrees(claimed, found):
        return f"{name} is {found.label} ({found.mime}), not the {claimed} its name (.{ext}) says"
    declared = declared_type.split(";")[0].strip().lower()
    if not _agrees(declared, found):
        return f"{name} is {found.label} ({found.mime}), not the {declared} it was sent as"
    return ""


def _agrees(claimed: str, found: Sniffed) -> bool:
    """Whether a claimed type fits the bytes: the same type, or of one family (text, raster images)."""
    claimed = _ALIASES.get(claimed, claimed)
    if claimed in _GENERIC or claimed == found.mime or (found.mime, claimed) in _AGREE:
        return True
    if claimed == "application/zip" and found.zip:
        return True
    return _family(claimed) == _family(found.mime)


def _family(mime: str) -> str:
    if mime.startswith("text/") or mime in _TEXTUAL:
        return "text"
    if mime.startswith("image/") and mime != "image/svg+xml":
        return "image"
    return mime
