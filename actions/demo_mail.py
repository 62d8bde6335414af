"""Demo mail: a stream of realistic raw messages, as a support mailbox receives them in a working day.

generate() returns each message's bytes with the category and priority it is
meant to get, so tests and demos can tell whether the analysis read it
right; generate_messages() returns the bytes alone; stream() keeps writing
messages dated as they are drawn, for mail arriving live. Senders, companies and
numbers vary; every domain is under .example (RFC 2606), so nothing here can
reach a real address. The same seed gives the same bytes.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from django.utils import timezone

from actions.demo_mime import Draft, ascii_name, build, pdf
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
# Replies answer one of the last this many messages of their category, so an endless stream stays small.
THREADS_KEPT = 50
SPREAD_HOURS = 8
# stream() draws categories in rounds of this many messages, every category in each round.
STREAM_ROUND = 20


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
            address=f"{ascii_name(first)}.{ascii_name(last)}@{domain}",
            colleague=colleague,
            colleague_address=f"{ascii_name(colleague)}.{ascii_name(rng.choice(LAST_NAMES))}@{domain}",
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
    writer = _Writer(rng, mailbox)
    return [
        writer.write(category, now - timedelta(minutes=age)) for category, age in zip(categories, ages, strict=True)
    ]


def stream(*, seed: int | None = None, mailbox: str = MAILBOX) -> Iterator[DemoMessage]:
    """Messages without end, each dated the moment it is drawn: the demo's mail arriving live.

    They come in rounds of STREAM_ROUND, each holding every category once
    and the rest by CATEGORY_WEIGHTS, so a short demo already shows them all.
    """
    rng = random.Random(seed)  # noqa: S311 (demo data, not secrets)
    writer = _Writer(rng, mailbox)
    while True:
        for category in _categories(rng, STREAM_ROUND):
            yield writer.write(category, timezone.now())


class _Writer:
    """Writes one message after another, remembering each thread so later mail can answer earlier mail."""

    def __init__(self, rng: random.Random, mailbox: str) -> None:
        self.rng, self.mailbox, self.written = rng, mailbox, 0
        self.threads: dict[str, deque[tuple[DemoMessage, Draft, datetime]]] = {
            name: deque(maxlen=THREADS_KEPT) for name in REPLYING
        }

    def write(self, category: str, when: datetime) -> DemoMessage:
        rng = self.rng
        values = _Values(rng, when, self.mailbox)
        earlier = self.threads.get(category)
        if earlier and rng.random() < REPLY_SHARE:
            parent, parent_draft, parent_when = rng.choice(earlier)
            draft = _follow_up(category, parent, parent_draft, parent_when, rng)
            in_reply_to, references = parent.message_id, (*parent.references, parent.message_id)
        else:
            draft, in_reply_to, references = BUILDERS[category](rng, values, self.mailbox), "", ()
        message_id = f"<{rng.getrandbits(64):016x}.{self.written}@{draft.sender[1].rpartition('@')[2]}>"
        self.written += 1
        message = DemoMessage(
            category,
            CATEGORY_PRIORITIES.get(category, PRIORITIES["normal"]),
            message_id,
            draft.subject,
            build(draft, message_id, when, self.mailbox, in_reply_to, references, rng),
            in_reply_to,
            references,
        )
        if category in self.threads:
            self.threads[category].append((message, draft, when))
        return message


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


def _person(rng: random.Random, values: _Values, category: str, *, internal: bool = False) -> Draft:
    """A person's message from a template of the category, with greeting, signature and sometimes a Cc."""
    subject, body = rng.choice(TEMPLATES[category])
    domain = values["internal"] if internal else values["address"].rpartition("@")[2]
    address = f"{values['address'].rpartition('@')[0]}@{domain}"
    text = f"{rng.choice(GREETINGS)}\n\n{body}{SIGNATURE}".format_map({**values, "sign": rng.choice(SIGN_OFFS)})
    draft = Draft((values["name"], address), subject.format_map(values), text, html=rng.random() < 0.35)
    if rng.random() < 0.2:
        draft.cc.append(values["colleague_address"] if not internal else f"{ascii_name(values['colleague'])}@{domain}")
    return draft


def _customer(category: str) -> Callable[[random.Random, _Values, str], Draft]:
    def build(rng: random.Random, values: _Values, mailbox: str) -> Draft:
        draft = _person(rng, values, category)
        if category == "billing" and "invoice" in draft.subject.lower():
            draft.attachments.append((f"{values['invoice']}.pdf", "application/pdf", pdf(values["invoice"])))
        return draft

    return build


def _colleague(category: str) -> Callable[[random.Random, _Values, str], Draft]:
    def build(rng: random.Random, values: _Values, mailbox: str) -> Draft:
        draft = _person(rng, values, category, internal=True)
        if "attached" in draft.text and category == "approval":
            draft.attachments.append((f"quote-PO-{values['po']}.pdf", "application/pdf", pdf(f"Quote {values['po']}")))
        elif "attached" in draft.text:
            rows = "\n".join(
                f"2025-{month:02d},{rng.randint(90, 140)},{rng.uniform(99, 100):.2f}" for month in (7, 8, 9)
            )
            draft.attachments.append(("last-quarter.csv", "text/csv", f"month,seats,uptime\n{rows}\n".encode()))
        return draft

    return build


def _newsletter(rng: random.Random, values: _Values, mailbox: str) -> Draft:
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
    draft = Draft((name, address), f"This week in {topic}: {len(links)} links", text, html=True)
    draft.headers = {
        "List-Id": f"{name} <weekly.{domain}>",
        "List-Unsubscribe": f"<{unsubscribe}>, <mailto:leave@{domain}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "bulk",
    }
    return draft


def _auto_reply(rng: random.Random, values: _Values, mailbox: str) -> Draft:
    subject = rng.choice(["Out of Office: Re: Your support request", "Automatic reply: Your invoice", "Out of Office"])
    text = (
        f"Thank you for your message. I am out of the office until {values['back']} with limited access to "
        f"email.\n\nFor urgent matters please contact {values['colleague']} at {values['colleague_address']}.\n\n"
        f"{values['name']}\n{values['company']}\n"
    )
    draft = Draft((values["name"], values["address"]), subject, text)
    draft.headers = {"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}
    return draft


def _bounce(rng: random.Random, values: _Values, mailbox: str) -> Draft:
    host = f"mail.{values['internal']}"
    lost = f"{ascii_name(values['first'])}@{values['address'].rpartition('@')[2]}"
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
    draft = Draft(("Mail Delivery System", f"MAILER-DAEMON@{host}"), "Undelivered Mail Returned to Sender", text)
    draft.headers = {"Return-Path": "<>"}
    draft.report = [report, returned]
    return draft


BUILDERS: dict[str, Callable[[random.Random, _Values, str], Draft]] = {
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


def _follow_up(category: str, parent: DemoMessage, draft: Draft, when: datetime, rng: random.Random) -> Draft:
    """The sender of an earlier message writes again in its thread, quoting it."""
    name, _ = draft.sender
    quoted = "\n".join(f"> {line}" if line else ">" for line in draft.text.splitlines())
    text = (
        f"{rng.choice(GREETINGS)}\n\n{FOLLOW_UPS[category]}\n\n{name.split()[0]}\n\n"
        f"On {format_datetime(when)}, {name} <{draft.sender[1]}> wrote:\n{quoted}\n"
    )
    subject = parent.subject if parent.subject.lower().startswith("re:") else f"Re: {parent.subject}"
    return Draft(draft.sender, subject, text, cc=list(draft.cc))
