"""Demo mail's bytes: a drafted message built as RFC 5322, the same bytes for the same random generator.

A draft may carry an HTML alternative, a bounce's delivery report and
attachments; pdf() makes the small valid PDFs that invoices and quotes attach.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape


@dataclass
class Draft:
    """A message before it is built: who, what, and the parts that make it."""

    sender: tuple[str, str]
    subject: str
    text: str
    html: bool = False
    cc: list[str] = field(default_factory=list)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # name, MIME type, content
    headers: dict[str, str] = field(default_factory=dict)
    report: list[EmailMessage] = field(default_factory=list)  # a bounce's parts after its text


def build(
    draft: Draft,
    message_id: str,
    when: datetime,
    mailbox: str,
    in_reply_to: str,
    references: tuple[str, ...],
    rng: random.Random,
) -> bytes:
    message = EmailMessage()
    name, address = draft.sender
    for header, value in draft.headers.items():
        if header == "Return-Path":
            message[header] = value
    message["From"] = f"{name} <{address}>" if name else address
    message["To"] = mailbox
    if draft.cc:
        message["Cc"] = ", ".join(draft.cc)
    message["Subject"] = draft.subject
    message["Date"] = format_datetime(when)
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = " ".join(references)
    for header, value in draft.headers.items():
        if header != "Return-Path":
            message[header] = value
    message.set_content(draft.text)
    if draft.html:
        message.add_alternative(html_version(draft.text), subtype="html")
    if draft.report:
        # RFC 3464: the human-readable text, then the machine-readable status, then the returned message.
        message.make_mixed()
        message.set_type("multipart/report")
        message.set_param("report-type", "delivery-status")
        for part in draft.report:
            message.attach(part)
    for filename, mime_type, content in draft.attachments:
        maintype, subtype = mime_type.split("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    # Fixed boundaries: the standard library draws them at random, and the same seed must give the same bytes.
    for number, part in enumerate(message.walk()):
        if part.get_content_maintype() == "multipart":
            part.set_boundary(f"=_demo_{rng.getrandbits(48):012x}_{number}")
    return message.as_bytes(policy=policy.SMTP)


def html_version(text: str) -> str:
    paragraphs = "".join(f"<p>{escape(block).replace(chr(10), '<br>')}</p>" for block in text.split("\n\n"))
    return f'<!DOCTYPE html><html><body style="font-family: sans-serif">{paragraphs}</body></html>\n'


def ascii_name(name: str) -> str:
    """A name as the local part of an address: "José O'Brien" gives "joseobrien"."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(char for char in plain.lower() if char.isalnum())


def pdf(title: str) -> bytes:
    """A small one-page PDF that says `title`, with a correct cross-reference table."""
    stream = f"BT /F1 18 Tf 72 720 Td ({title}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
