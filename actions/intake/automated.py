"""Recognising mail a machine sent: our own, bounces, auto-replies, mailing lists.

Such mail is never answered automatically (RFC 3834): answering a bounce or
a vacation notice starts a mail loop. Signals are taken in order of how sure
they are: our own Message-ID first, then delivery reports, then the headers
auto-responders set, then the null sender (which auto-responders use too),
then list headers. Subjects count only where the prefix
is unmistakable or another signal backs them up, because people write
"out of office" in ordinary mail too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.utils import parseaddr

from django.conf import settings

from actions.intake.parsing import ParsedMessage
from actions.models import Automated
from integrations import outbox

# What outbox.message_id_for() writes: <mailroom.{action id}.{purpose}.{digest}@{MESSAGE_ID_DOMAIN}>.
_OUR_MESSAGE_ID = re.compile(r"<mailroom\.(\d+)\.([^<>@\s]+)\.[0-9a-f]{16}@([^<>@\s]+)>")
_DAEMONS = {"mailer-daemon", "mailerdaemon", "postmaster", "mail-daemon"}
_DELIVERY_FAILURE = re.compile(
    r"undeliver|delivery (?:status notification|notification|failure|failed|has failed|problem)"
    r"|mail delivery failed|returned mail|returned to sender|failure notice|non-?delivery|could not be delivered"
    r"|unzustellbar|nicht zugestellt|non remis|no entregado",
    re.IGNORECASE,
)
# Prefixes only auto-responders write (Outlook, Exchange, Apple Mail, Gmail, in a few languages).
_AUTO_REPLY_PREFIX = re.compile(
    r"^\s*(?:auto|automatic reply|auto[- ]?reply|auto[- ]?response|autoresponse|out of (?:the )?office(?: reply)?"
    r"|abwesenheitsnotiz|automatische antwort|réponse automatique|risposta automatica|respuesta automática)\s*:",
    re.IGNORECASE,
)
# Words that suggest an auto-reply; enough only together with another signal.
_AUTO_REPLY_WORDS = re.compile(
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|auto[- ]?respon|abwesen|vacation|away from",
    re.IGNORECASE,
)
_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply")
_NO = {"", "no", "false", "0"}

_Check = Callable[[ParsedMessage, "_Headers"], str]


def detect_automated(parsed: ParsedMessage) -> tuple[str, str]:
    """What kind of automated mail this is (an `Automated` value) and why, or ("", "") for mail a person wrote."""
    headers = _Headers(parsed.headers)
    checks: list[tuple[Automated, _Check]] = [
        (Automated.OWN, _own),
        (Automated.BOUNCE, _bounce),
        (Automated.AUTO_REPLY, _auto_reply),
        (Automated.BOUNCE, _null_sender),
        (Automated.MAILING_LIST, _mailing_list),
    ]
    for kind, check in checks:
        reason = check(parsed, headers)
        if reason:
            return kind.value, reason
    return Automated.NO.value, ""


class _Headers:
    """The first value of each header, by name in any case."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._first: dict[str, str] = {}
        for name, value in pairs:
            self._first.setdefault(name.lower(), value.strip())

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._first

    def get(self, name: str) -> str:
        return self._first.get(name.lower(), "")

    @property
    def from_null_sender(self) -> bool:
        """Return-Path: <>, the envelope sender of delivery reports (and, per RFC 3834, of auto-replies)."""
        return self.get("Return-Path").replace(" ", "") == "<>"

    def token(self, name: str) -> str:
        """The header's first word, lower-case ("auto-replied" from "auto-replied; owner-email=...")."""
        words = re.split(r"[\s;]+", self.get(name).lower(), maxsplit=1)
        return words[0]


def _quoted(value: str) -> str:
    """A stranger's header value, short and on one line, for a reason shown to people."""
    value = " ".join(value.split())
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _own(parsed: ParsedMessage, headers: _Headers) -> str:
    domain = settings.MESSAGE_ID_DOMAIN.lower()
    ours = _OUR_MESSAGE_ID.fullmatch(parsed.message_id)
    # The digest is keyed with SECRET_KEY: a stranger cannot make a Message-ID that passes this.
    if ours and ours[3].lower() == domain and outbox.message_id_for(int(ours[1]), ours[2]) == parsed.message_id:
        return f"Mailroom sent it: its Message-ID is the one written for action {ours[1]}"
    id_domain = parsed.message_id.rpartition("@")[2].removesuffix(">").lower()
    if id_domain == domain and parsed.from_address.lower() == parseaddr(settings.DEFAULT_FROM_EMAIL)[1].lower():
        return "It comes from Mailroom's own address with a Message-ID in Mailroom's domain"
    return ""


def _bounce(parsed: ParsedMessage, headers: _Headers) -> str:
    if parsed.content_type == "multipart/report" and parsed.report_type not in ("", "disposition-notification"):
        if parsed.report_type == "delivery-status":
            return "It is a delivery status report (multipart/report; report-type=delivery-status)"
        return f"It is a {parsed.report_type} report (multipart/report) sent by a mail system"
    if any(part.content_type == "message/delivery-status" for part in parsed.attachments):
        return "It carries a delivery status part (message/delivery-status)"
    if "X-Failed-Recipients" in headers:
        failed = _quoted(headers.get("X-Failed-Recipients"))
        return f"It names recipients a delivery failed for (X-Failed-Recipients: {failed})"
    local_part = parsed.from_address.rpartition("@")[0].lower()
    if local_part in _DAEMONS and _DELIVERY_FAILURE.search(parsed.subject):
        return f"It comes from {parsed.from_address} with the delivery failure subject {_quoted(parsed.subject)}"
    return ""


def _auto_reply(parsed: ParsedMessage, headers: _Headers) -> str:
    if headers.token("Auto-Submitted") not in _NO:
        return f"It says Auto-Submitted: {_quoted(headers.get('Auto-Submitted'))} (RFC 3834)"
    for name in _AUTO_REPLY_HEADERS:
        if name in headers and headers.token(name) not in _NO:
            return f"It carries the {name} header that auto-responders set"
    if headers.token("Precedence") == "auto_reply":
        return "It says Precedence: auto_reply"
    if parsed.content_type == "multipart/report" and parsed.report_type == "disposition-notification":
        return "It is a read receipt (multipart/report; report-type=disposition-notification)"
    if _AUTO_REPLY_PREFIX.match(parsed.subject):
        return f"Its subject {_quoted(parsed.subject)} starts the way automatic replies do"
    if _AUTO_REPLY_WORDS.search(parsed.subject):
        backing = _backing_signal(headers)
        if backing:
            return f"Its subject {_quoted(parsed.subject)} reads like an automatic reply, and {backing}"
    return ""


def _backing_signal(headers: _Headers) -> str:
    """A hint too weak alone that, with an auto-reply subject, settles it."""
    if "X-Auto-Response-Suppress" in headers:
        return "it carries X-Auto-Response-Suppress as Exchange auto-replies do"
    if headers.from_null_sender:
        return "it comes from the null sender (Return-Path: <>)"
    if headers.token("Precedence") in ("bulk", "junk", "list"):
        return f"it says Precedence: {headers.token('Precedence')}"
    return ""


def _null_sender(parsed: ParsedMessage, headers: _Headers) -> str:
    # Checked after the auto-reply headers: RFC 3834 asks auto-responders to use the null sender too.
    if headers.from_null_sender:
        return "It comes from the null sender (Return-Path: <>), which delivery reports use"
    return ""


def _mailing_list(parsed: ParsedMessage, headers: _Headers) -> str:
    if "List-Id" in headers:
        return f"It came through the mailing list {_quoted(headers.get('List-Id'))}"
    if "List-Unsubscribe" in headers:
        return "It has an unsubscribe link (List-Unsubscribe), as list mail and newsletters do"
    if "Mailing-List" in headers:
        return f"It came through the mailing list {_quoted(headers.get('Mailing-List'))}"
    if headers.token("Precedence") in ("bulk", "list", "junk"):
        return f"It says Precedence: {headers.token('Precedence')}, as list and bulk mail do"
    return ""
