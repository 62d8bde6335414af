"""Demo mail: a stream of realistic raw messages, as a support mailbox receives them in a working day.

generate() returns each message's bytes with the category and priority it is
meant to get, so tests and demos can tell whether the analysis read it
right; generate_messages() returns the bytes alone. Senders, companies and
numbers vary; every domain is under .example (RFC 2606), so nothing here can
reach a real address. The same seed gives the same bytes.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape

from django.utils import timezone

from actions.demo_templates import (
    CITIES,
    COMPANIES,
    FIRST_NAMES,
    FOLLOW_UPS,
    GREETINGS,
    ITEMS,
    LAST_NAMES,
    NEWSLETTERS,
    PAGES,
    PRODUCT,
    REPORTS,
    SERVICES,
    SIGN_OFFS,
    SIGNATURE,
    TEMPLATES,
    TIMEZONES,
    WEEKDAYS,
)
from integrations.llm.base import PRIORITIES

MAILBOX = "support@acme.example"
# How often each kind of mail arrives, relative to the others.
CATEGORY_WEIGHTS = {
    "support": 24,
    "newsletter": 14,
    "billing": 12,
    "task": 12,
    "meeting": 10,
    "auto_reply": 8,
    "approval": 6,
    "other": 6,
    "outage": 3,
    "bounce": 1,
}
CATEGORY_PRIORITIES = {
    "outage": PRIORITIES["urgent"],
    "approval": PRIORITIES["high"],
    "newsletter": PRIORITIES["low"],
    "auto_reply": PRIORITIES["low"],
    "bounce": PRIORITIES["low"],
}
# Of the mail in these categories, the share that follows up on an earlier message of the stream.
REPLY_SHARE = 0.2
REPLYING = ("support", "billing", "task")
SPREAD_HOURS = 8


@dataclass(frozen=True)
class DemoMessage:
    """One generated message: its raw bytes and what the analysis should make of it."""

    category: str
    priority: int
    message_id: str
    subject: str
    raw: bytes
    in_reply_to: str = ""  # the Message-ID of the earlier generated message it answers
    references: tuple[str, ...] = ()


@dataclass
class _Draft:
    """A message before it is built: who, what, and the parts that make it."""

    sender: tuple[str, str]
    subject: str
    text: str
    html: bool = False
    cc: list[str] = field(default_factory=list)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # name, MIME type, content
    headers: dict[str, str] = field(default_factory=dict)
    report: list[EmailMessage] = field(default_factory=list)  # a bounce's parts after its text


class _Values(dict):
    """The words templates are filled with, all drawn from one random generator."""

    def __init__(self, rng: random.Random, when: datetime, mailbox: str) -> None:
        company, domain = rng.choice(COMPANIES)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        colleague = rng.choice([name for name in FIRST_NAMES if name != first])
        later = when + timedelta(days=rng.randint(3, 14))
        deadline = when + timedelta(days=rng.randint(4, 20))
        city, street = rng.choice(CITIES)
        invoice = rng.randint(2000, 9000)
        super().__init__(
            first=first,
            name=f"{first} {last}",
            address=f"{_ascii(first)}.{_ascii(last)}@{domain}",
            colleague=colleague,
            colleague_address=f"{_ascii(colleague)}.{_ascii(rng.choice(LAST_NAMES))}@{domain}",
            company=company,
            internal=mailbox.rpartition("@")[2] or "acme.example",
            product=PRODUCT,
            service=rng.choice(SERVICES),
            page=rng.choice(PAGES),
            report=rng.choice(REPORTS),
            item=rng.choice(ITEMS),
            invoice=f"INV-{invoice}",
            invoice2=f"INV-{invoice + rng.randint(3, 9)}",
            order=rng.randint(100000, 999999),
            month=(when.replace(day=1) - timedelta(days=1)).strftime("%B"),
            next_month=(when.replace(day=28) + timedelta(days=7)).strftime("%B"),
            amount=f"{rng.choice([1200, 2450, 4800, 9600, 15750]):,}",
            currency=rng.choice(["EUR", "USD", "GBP"]),
            po=rng.randint(1000, 9999),
            weekday=rng.choice(WEEKDAYS),
            hour=rng.randint(9, 16),
            zone=rng.choice(TIMEZONES),
            date_long=f"{later.day} {later:%B %Y}",
            iso_date=f"{later:%Y-%m-%d}",
            deadline=f"{deadline.day} {deadline:%B}",
            since=(when - timedelta(minutes=rng.randint(10, 50))).strftime("%H:%M"),
            seats=rng.randint(20, 40),
            city=city,
            street=street,
            back=f"{later.day} {later:%B}",
        )


def generate(
    count: int, *, seed: int | None = None, now: datetime | None = None, mailbox: str = MAILBOX
) -> list[DemoMessage]:
    """`count` messages received over the last hours before `now`, oldest first, each with its intended category.

    Every category appears once `count` reaches the number of categories;
    the rest follow CATEGORY_WEIGHTS. Some mail answers earlier mail of the
    stream (In-Reply-To and References).
    """
    rng = random.Random(seed)  # noqa: S311 (demo data, not secrets: a seed makes the stream repeatable)
    now = now or timezone.now()
    categories = _categories(rng, count)
    ages = sorted((rng.uniform(1, SPREAD_HOURS * 60) for _ in range(count)), reverse=True)
    messages: list[DemoMessage] = []
    threads: dict[str, list[tuple[DemoMessage, _Draft, datetime]]] = {name: [] for name in REPLYING}
    for index, (category, age) in enumerate(zip(categories, ages, strict=True)):
        when = now - timedelta(minutes=age)
        values = _Values(rng, when, mailbox)
        earlier = threads.get(category)
        if earlier and rng.random() < REPLY_SHARE:
            parent, parent_draft, parent_when = rng.choice(earlier)
            draft = _follow_up(category, parent, parent_draft, parent_when, rng)
            in_reply_to, references = parent.message_id, (*parent.references, parent.message_id)
        else:
            draft, in_reply_to, references = BUILDERS[category](rng, values, mailbox), "", ()
        message_id = f"<{rng.getrandbits(64):016x}.{index}@{draft.sender[1].rpartition('@')[2]}>"
        message = DemoMessage(
            category,
            CATEGORY_PRIORITIES.get(category, PRIORITIES["normal"]),
            message_id,
            draft.subject,
            _build(draft, message_id, when, mailbox, in_reply_to, references, rng),
            in_reply_to,
            references,
        )
        messages.append(message)
        if category in threads:
            threads[category].append((message, draft, when))
    return messages


def generate_messages(
    count: int, *, seed: int | None = None, now: datetime | None = None, mailbox: str = MAILBOX
) -> list[bytes]:
    """The raw RFC 5322 bytes of generate()'s messages, oldest first."""
    return [message.raw for message in generate(count, seed=seed, now=now, mailbox=mailbox)]


def _categories(rng: random.Random, count: int) -> list[str]:
    names = list(CATEGORY_WEIGHTS)
    chosen = names[:] if count >= len(names) else []
    chosen += rng.choices(names, weights=list(CATEGORY_WEIGHTS.values()), k=count - len(chosen))
    rng.shuffle(chosen)
    return chosen


# --- Builders: one per category -------------------------------------------------------------------


def _person(rng: random.Random, values: _Values, category: str, *, internal: bool = False) -> _Draft:
    """A person's message from a template of the category, with greeting, signature and sometimes a Cc."""
    subject, body = rng.choice(TEMPLATES[category])
    domain = values["internal"] if internal else values["address"].rpartition("@")[2]
    address = f"{values['address'].rpartition('@')[0]}@{domain}"
    text = f"{rng.choice(GREETINGS)}\n\n{body}{SIGNATURE}".format_map({**values, "sign": rng.choice(SIGN_OFFS)})
    draft = _Draft((values["name"], address), subject.format_map(values), text, html=rng.random() < 0.35)
    if rng.random() < 0.2:
        draft.cc.append(values["colleague_address"] if not internal else f"{_ascii(values['colleague'])}@{domain}")
    return draft


def _customer(category: str) -> Callable[[random.Random, _Values, str], _Draft]:
    def build(rng: random.Random, values: _Values, mailbox: str) -> _Draft:
        draft = _person(rng, values, category)
        if category == "billing" and "invoice" in draft.subject.lower():
            draft.attachments.append((f"{values['invoice']}.pdf", "application/pdf", _pdf(values["invoice"])))
        return draft

    return build


def _colleague(category: str) -> Callable[[random.Random, _Values, str], _Draft]:
    def build(rng: random.Random, values: _Values, mailbox: str) -> _Draft:
        draft = _person(rng, values, category, internal=True)
        if "attached" in draft.text and category == "approval":
            draft.attachments.append((f"quote-PO-{values['po']}.pdf", "application/pdf", _pdf(f"Quote {values['po']}")))
        elif "attached" in draft.text:
            rows = "\n".join(
                f"2025-{month:02d},{rng.randint(90, 140)},{rng.uniform(99, 100):.2f}" for month in (7, 8, 9)
            )
            draft.attachments.append(("last-quarter.csv", "text/csv", f"month,seats,uptime\n{rows}\n".encode()))
        return draft

    return build


def _newsletter(rng: random.Random, values: _Values, mailbox: str) -> _Draft:
    name, address, topic = rng.choice(NEWSLETTERS)
    domain = address.rpartition("@")[2]
    unsubscribe = f"https://{domain}/unsubscribe?u={rng.getrandbits(32):08x}"
    links = rng.sample(["Scaling queues", "Postmortems that help", "Pricing pages", "On-call without burnout",
                        "Status pages", "Cutting cloud costs"], 3)  # fmt: skip
    text = (
        f"This week in {topic}: {len(links)} links worth your time.\n\n"
        + "\n".join(f"* {link}: https://{domain}/r/{rng.randint(1000, 9999)}" for link in links)
        + f"\n\nYou receive this because you subscribed at {domain}.\n"
        f"Unsubscribe: {unsubscribe}\n"
    )
    draft = _Draft((name, address), f"This week in {topic}: {len(links)} links", text, html=True)
    draft.headers = {
        "List-Id": f"{name} <weekly.{domain}>",
        "List-Unsubscribe": f"<{unsubscribe}>, <mailto:leave@{domain}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "bulk",
    }
    return draft


def _auto_reply(rng: random.Random, values: _Values, mailbox: str) -> _Draft:
    subject = rng.choice(["Out of Office: Re: Your support request", "Automatic reply: Your invoice", "Out of Office"])
    text = (
        f"Thank you for your message. I am out of the office until {values['back']} with limited access to "
        f"email.\n\nFor urgent matters please contact {values['colleague']} at {values['colleague_address']}.\n\n"
        f"{values['name']}\n{values['company']}\n"
    )
    draft = _Draft((values["name"], values["address"]), subject, text)
    draft.headers = {"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}
    return draft


def _bounce(rng: random.Random, values: _Values, mailbox: str) -> _Draft:
    host = f"mail.{values['internal']}"
    lost = f"{_ascii(values['first'])}@{values['address'].rpartition('@')[2]}"
    text = (
        f"This is the mail system at host {host}.\n\nI'm sorry to have to inform you that your message could not "
        f"be delivered to one or more recipients.\n\n<{lost}>: host mx.{lost.rpartition('@')[2]} said: "
        f"550 5.1.1 <{lost}>: Recipient address rejected: User unknown\n"
    )
    original = EmailMessage()
    original["From"] = mailbox
    original["To"] = lost
    original["Subject"] = "Re: Your support request"
    original["Message-ID"] = f"<{rng.getrandbits(64):016x}@{values['internal']}>"
    original.set_content("Hello,\n\nwe have reset your account. You can sign in again.\n")
    fields = EmailMessage()
    fields["Reporting-MTA"] = f"dns; {host}"
    recipient = EmailMessage()
    for name, value in [("Final-Recipient", f"rfc822; {lost}"), ("Action", "failed"), ("Status", "5.1.1"),
                        ("Diagnostic-Code", "smtp; 550 5.1.1 User unknown")]:  # fmt: skip
        recipient[name] = value
    report = EmailMessage()
    report["Content-Type"] = "message/delivery-status"
    report.set_payload([fields, recipient])
    returned = EmailMessage()
    returned.set_content(original)
    draft = _Draft(("Mail Delivery System", f"MAILER-DAEMON@{host}"), "Undelivered Mail Returned to Sender", text)
    draft.headers = {"Return-Path": "<>"}
    draft.report = [report, returned]
    return draft


BUILDERS: dict[str, Callable[[random.Random, _Values, str], _Draft]] = {
    "support": _customer("support"),
    "outage": _customer("outage"),
    "meeting": _customer("meeting"),
    "billing": _customer("billing"),
    "other": _customer("other"),
    "task": _colleague("task"),
    "approval": _colleague("approval"),
    "newsletter": _newsletter,
    "auto_reply": _auto_reply,
    "bounce": _bounce,
}


def _follow_up(category: str, parent: DemoMessage, draft: _Draft, when: datetime, rng: random.Random) -> _Draft:
    """The sender of an earlier message writes again in its thread, quoting it."""
    name, _ = draft.sender
    quoted = "\n".join(f"> {line}" if line else ">" for line in draft.text.splitlines())
    text = (
        f"{rng.choice(GREETINGS)}\n\n{FOLLOW_UPS[category]}\n\n{name.split()[0]}\n\n"
        f"On {format_datetime(when)}, {name} <{draft.sender[1]}> wrote:\n{quoted}\n"
    )
    subject = parent.subject if parent.subject.lower().startswith("re:") else f"Re: {parent.subject}"
    return _Draft(draft.sender, subject, text, cc=list(draft.cc))


# --- Building the bytes ------------------------------------------------------------------------------


def _build(
    draft: _Draft,
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
        message.add_alternative(_html(draft.text), subtype="html")
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


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{escape(block).replace(chr(10), '<br>')}</p>" for block in text.split("\n\n"))
    return f'<!DOCTYPE html><html><body style="font-family: sans-serif">{paragraphs}</body></html>\n'


def _ascii(name: str) -> str:
    """A name as the local part of an address: "José O'Brien" gives "joseobrien"."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(char for char in plain.lower() if char.isalnum())


def _pdf(title: str) -> bytes:
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
