"""ZIP containers by their parts: OOXML and OpenDocument files, Java and Android packages, plain archives.

The central directory says what a ZIP holds without unpacking it; each file
inside is then judged by its name and its first bytes only, so a ZIP bomb
costs at most a few hundred bytes of inflating per entry.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import BinaryIO

from integrations.files.sniff import Sniffed, program

# More entries than this are refused rather than checked one by one.
MAX_ENTRIES = 2000
# Archives inside archives are opened once more, when no larger than this.
NESTED_MAX_BYTES = 5 * 1024 * 1024
_ENTRY_HEAD = 512

# File names that run when opened, whatever their content: as attachment names, and inside archives.
RUNNABLE_EXTENSIONS = {
    **dict.fromkeys(("exe", "dll", "scr", "com", "pif", "cpl", "sys", "drv", "ocx"), "a Windows program"),
    **dict.fromkeys(("msi", "msp", "mst", "msix", "appx", "appxbundle"), "a Windows installer"),
    **dict.fromkeys(("bat", "cmd"), "a Windows batch script"),
    **dict.fromkeys(("ps1", "psm1", "psd1"), "a PowerShell script"),
    **dict.fromkeys(("vbs", "vbe", "js", "jse", "wsf", "wsh", "wsc", "hta", "mjs"), "a script"),
    **dict.fromkeys(("sh", "bash", "zsh", "csh", "ksh", "command", "py", "pl", "rb", "php"), "a script"),
    **dict.fromkeys(("jar", "class", "apk", "app", "dmg", "pkg", "deb", "rpm"), "a program or package"),
    **dict.fromkeys(("lnk", "url", "scf", "reg", "inf", "iso", "img", "vhd", "vhdx"), "a Windows shortcut or image"),
    **dict.fromkeys(
        ("docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppam", "ppsm", "sldm"),
        "a macro-enabled Office document",
    ),
}
# Pages a browser would render (and run the scripts of) if served as they are named. Only attachment
# names count: inside archives they are ordinary parts (Word keeps SVG icons, EPUB is XHTML).
PAGE_EXTENSIONS = dict.fromkeys(
    ("html", "htm", "xhtml", "xht", "shtml", "mht", "mhtml", "svg", "svgz"), "a page that can run scripts"
)
DANGEROUS_EXTENSIONS = {**RUNNABLE_EXTENSIONS, **PAGE_EXTENSIONS}

_OOXML = {
    "word/document.xml": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "a Word document (.docx)",
    ),
    "xl/workbook.xml": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "an Excel workbook (.xlsx)",
    ),
    "ppt/presentation.xml": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "a PowerPoint presentation (.pptx)",
    ),
}
_ODF = {
    "application/vnd.oasis.opendocument.text": "an OpenDocument text (.odt)",
    "application/vnd.oasis.opendocument.spreadsheet": "an OpenDocument spreadsheet (.ods)",
    "application/vnd.oasis.opendocument.presentation": "an OpenDocument presentation (.odp)",
    "application/epub+zip": "an EPUB e-book",
}


def extension(name: str) -> str:
    """The lower-case extension of a file name, without the dot."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rpartition(".")[2].lower() if "." in base else ""


def sniff_zip(file: BinaryIO, *, depth: int = 0) -> Sniffed:
    """What a ZIP-based file is, and `danger` when it is or holds something that runs (nested archives: once)."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        return Sniffed("application/zip", "a damaged ZIP archive", zip=True)
    with archive:
        entries = [entry for entry in archive.infolist() if not entry.is_dir()]
        if len(entries) > MAX_ENTRIES:
            label = f"a ZIP archive of {len(entries)} files, too many to check"
            return Sniffed("application/zip", label, danger=label, zip=True)
        kind = _kind(archive, [entry.filename for entry in entries])
        if kind.danger:
            return kind
        inside = _dangerous_entry(archive, entries, depth)
        if inside:
            return Sniffed(kind.mime, kind.label, danger=f"{kind.label} holding {inside}", zip=True)
        return kind


def _kind(archive: zipfile.ZipFile, names: list[str]) -> Sniffed:
    lower = {name.lower() for name in names}
    if "[content_types].xml" in lower:
        if any(name.rsplit("/", 1)[-1] == "vbaproject.bin" for name in lower) or b"macroEnabled" in _read(
            archive, "[Content_Types].xml"
        ):
            label = "a macro-enabled Office document (it contains vbaProject.bin)"
            return Sniffed("application/vnd.ms-office.macroEnabled", label, danger=label, zip=True)
        for part, (mime, label) in _OOXML.items():
            if part in lower:
                return Sniffed(mime, label, zip=True)
        return Sniffed("application/zip", "an Office Open XML package", zip=True)
    if names and names[0] == "mimetype":
        mime = _read(archive, "mimetype")[:100].decode("ascii", "replace").strip()
        if any(name.startswith(("basic/", "scripts/")) for name in lower):
            label = "an OpenDocument file with macros"
            return Sniffed(mime, label, danger=label, zip=True)
        return Sniffed(mime, _ODF.get(mime, f"a ZIP-based {mime} file"), zip=True)
    if "androidmanifest.xml" in lower and "classes.dex" in lower:
        return _danger("application/vnd.android.package-archive", "an Android app (APK)")
    if "meta-inf/manifest.mf" in lower or any(name.endswith(".class") for name in lower):
        return _danger("application/java-archive", "a Java archive (JAR)")
    if "appxmanifest.xml" in lower:
        return _danger("application/msix", "a Windows app package (MSIX/APPX)")
    return Sniffed("application/zip", "a ZIP archive", zip=True)


def _dangerous_entry(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], depth: int) -> str:
    """The first file inside that runs, described; empty when there is none."""
    for entry in entries:
        name = entry.filename
        what = RUNNABLE_EXTENSIONS.get(extension(name))
        if what:
            return f"{name} ({what})"
        if entry.flag_bits & 0x1:
            return f"{name}, which is encrypted and cannot be checked"
        if not entry.file_size:
            continue
        try:
            with archive.open(entry) as member:
                head = member.read(_ENTRY_HEAD)
                found = program(head)
                if found:
                    return f"{name} ({found.danger})"
                if depth == 0 and head.startswith(b"PK\x03\x04") and entry.file_size <= NESTED_MAX_BYTES:
                    # Reading stops at the entry's declared size, so this stays within the limit.
                    inner = sniff_zip(io.BytesIO(head + member.read()), depth=1)
                    if inner.danger:
                        return f"{name} ({inner.danger})"
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error, OSError, EOFError):
            return f"{name}, which cannot be read to be checked"
    return ""


def _read(archive: zipfile.ZipFile, name: str, limit: int = 1024 * 1024) -> bytes:
    try:
        with archive.open(name) as member:
            return member.read(limit)
    except (KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error):
        return b""


def _danger(mime: str, label: str) -> Sniffed:
    return Sniffed(mime, label, danger=label, zip=True)
