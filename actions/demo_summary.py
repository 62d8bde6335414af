"""The demo's logins, and what the start script prints once Mailroom answers: where to look and how to sign in.

The demo passwords are kept in the data folder (outside git), so running the
quick start again prints them again; a password someone changed since is
never printed. The approval link printed is one taken from a request waiting
in the outbox, checked as the link page checks it, so following it is exactly
what the approver's email offers.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.urls import Resolver404, resolve, reverse

from approvals.decisions import DecisionRefused, read_link_token
from approvals.models import Approval, ApprovalStatus
from integrations.models import OutboxMessage

ADMIN = "admin"
ADMIN_LOGIN_FILE = "demo_admin_password"
TEAM_LOGIN_FILE = "demo_team_password"
# Outbox messages read at most, oldest first, to find a link that still decides something.
LINKS_SEARCHED = 200
RULE = "-" * 78


def _new_password(file_name: str, length: int) -> str:
    path = settings.DATA_DIR / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_urlsafe(length))
    path.chmod(0o600)
    return path.read_text()


def demo_password(user, file_name: str) -> str | None:
    """The kept demo password if it is still `user`'s; None when someone changed it since."""
    path = settings.DATA_DIR / file_name
    if path.exists() and user.check_password(path.read_text()):
        return path.read_text()
    return None


def ensure_admin() -> str | None:
    """Make sure the 'admin' superuser exists; return its demo password, or None if it was changed since."""
    User = get_user_model()
    user = User.objects.filter(username=ADMIN).first()
    if user is None:
        password = _new_password(ADMIN_LOGIN_FILE, 12)
        User.objects.create_superuser(ADMIN, "admin@acme.example", password)
        return password
    return demo_password(user, ADMIN_LOGIN_FILE)


def ensure_team_password() -> str:
    """Give every team member without a password the shared demo one (approvers sign in to decide); return it."""
    path = settings.DATA_DIR / TEAM_LOGIN_FILE
    password = path.read_text() if path.exists() else _new_password(TEAM_LOGIN_FILE, 9)
    users = get_user_model().objects.filter(team_member__isnull=False)
    without = [user.pk for user in users if not user.has_usable_password()]
    if without:
        # One hash for the one shared password (hashing costs about a second each): a salt per member
        # would hide nothing, since everyone in the demo is told the same password.
        users.filter(pk__in=without).update(password=make_password(password))
    return password


@dataclass(frozen=True)
class WaitingApproval:
    """An approval request in the outbox whose link still decides: the message, its link, and who it is for."""

    message: OutboxMessage
    link: str
    approval: Approval
    approver: object


def approval_waiting(site_url: str) -> WaitingApproval | None:
    """The oldest approval request in the outbox, linking to `site_url`, that its approver can still decide."""
    site = site_url.rstrip("/")
    addresses = re.compile(re.escape(site) + r"(/\S*)")
    messages = OutboxMessage.objects.filter(text_body__contains=f"{site}/").order_by("created_at", "pk")
    for message in messages[:LINKS_SEARCHED]:
        for match in addresses.finditer(message.text_body):
            token = _link_token(match.group(1))
            if not token:
                continue
            try:
                approval, approver = read_link_token(token)
            except DecisionRefused:
                continue
            if approval.status == ApprovalStatus.PENDING and not approval.votes.filter(voter=approver).exists():
                return WaitingApproval(message, match.group(0), approval, approver)
    return None


def _link_token(path: str) -> str:
    """The token of an emailed approval link's path, or "" for any other address."""
    try:
        found = resolve(path)
    except Resolver404:
        return ""
    return found.kwargs["token"] if found.view_name == "approvals:link" else ""


def summary(site_url: str, *, every: float = 0, logs: str = "") -> str:
    """The block printed once Mailroom answers: the pages to open and the logins to open them with."""
    site = site_url.rstrip("/")
    admin = get_user_model().objects.filter(username=ADMIN).first()
    admin_password = demo_password(admin, ADMIN_LOGIN_FILE) if admin else None
    rows = [
        ("Dashboard", f"{site}{reverse('admin:dashboard')}"),
        ("Admin", f"{site}{reverse('admin:index')}"),
        ("", _login(ADMIN, admin_password) if admin else "no 'admin' user: load_demo --admin makes one"),
        ("Outbox", f"{site}{reverse('admin:integrations_outboxmessage_changelist')}"),
    ]
    waiting = approval_waiting(site)
    if waiting is None:
        rows.append(("", "(no approval request is waiting in the outbox now)"))
    else:
        change = reverse("admin:integrations_outboxmessage_change", args=[waiting.message.pk])
        approver = waiting.approver
        name = approver.get_full_name() or approver.get_username()
        rows += [
            ("", f"an approval request to {name}: {site}{change}"),
            ("Approval link", waiting.link),
            ("", _login(approver.get_username(), demo_password(approver, TEAM_LOGIN_FILE))),
            ("", f"(the link is for {name} alone: open it signed out of the admin, e.g. in a private window)"),
        ]
    rows += [("API docs", f"{site}{reverse('api-docs')}"), ("Health", f"{site}{reverse('health')}")]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"Mailroom is running with demo data at {site}/", ""]
    lines += [f"  {label:<{width}}{value}" for label, value in rows]
    lines.append("")
    if every:
        lines.append(f"New demo mail arrives every {every:g} s.")
    if logs:
        lines.append(f"Logs of the web server, the workers and the demo mail: {logs}/")
    lines.append("Ctrl-C stops everything.")
    return "\n".join([RULE, *lines, RULE])


def _login(username: str, password: str | None) -> str:
    if password is None:
        return f"user {username} (its password was changed since the demo set it)"
    return f"user {username}, password {password}"
