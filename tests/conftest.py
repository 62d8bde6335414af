"""Fixtures shared by every suite: the personas and a few domain objects.

Personas (as in healthchecks): alice is the owner (superuser), bob a team
member with staff access, charlie a user with no access at all.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from actions.models import Email
from actions.proposals import propose_action

# The real peers (SMTP, Dovecot, Radicale, S3) and loopback services (OpenAI, Jira, Asana) as fixtures, for every suite.
pytest_plugins = [
    "tests.smtp",
    "tests.openai_server",
    "tests.dovecot",
    "tests.radicale",
    "tests.s3",
    "tests.task_servers",
    "tests.api_people",
    "tests.browser",
]


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # Hashing a persona's password the real way costs ~0.3 s; tests need no strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests run with DEBUG off, where the manifest storage needs collectstatic
    # to have run and WhiteNoise warns about a missing STATIC_ROOT. Pages are
    # rendered here, not served; test_settings covers the real storage.
    settings.STATIC_ROOT = None
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def media(settings, tmp_path) -> Path:
    """Stored files (attachments, uploads) go to the test's own folder."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_superuser("alice", "alice@acme.example", "alice-password")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@acme.example", "bob-password", is_staff=True)


@pytest.fixture
def charlie(db):
    return get_user_model().objects.create_user("charlie", "charlie@acme.example", "charlie-password")


@pytest.fixture
def make_email(db):
    counter = iter(range(1, 1_000_000))

    def make(**fields) -> Email:
        n = next(counter)
        defaults = {
            "mailbox": "support@acme.example",
            "message_id": f"<message-{n}@customer.example>",
            "from_address": f"customer{n}@customer.example",
            "subject": f"Question number {n}",
            "text_body": "Hello, could you help me?",
            "to": ["support@acme.example"],
        }
        return Email.objects.create(**{**defaults, **fields})

    return make


# Valid parameters for each action type, for tests that need an action and not its details.
SAMPLE_PARAMS = {
    "send_reply": {"body": "Thanks, we are on it."},
    "forward_email": {"to": ["colleague@acme.example"]},
    "create_task": {"title": "Call the customer back"},
    "schedule_meeting": {"title": "Review", "start": "2031-11-25T15:00:00", "attendees": ["dana@acme.example"]},
    "set_reminder": {"text": "Check the refund went out", "in_hours": 24},
    "archive_email": {},
    "upload_file": {},
    "delegate_task": {},
    "mark_complete": {},
    "follow_up": {},
    "approve_request": {"decision": "approve"},
    "escalate_issue": {"reason": "The customer is still waiting"},
}
REPLY = SAMPLE_PARAMS["send_reply"]


@pytest.fixture
def make_action(make_email):
    def make(type: str = "send_reply", **kwargs):
        if "email" not in kwargs:
            kwargs["email"] = make_email()
        kwargs.setdefault("params", SAMPLE_PARAMS[str(type)])
        return propose_action(type, **kwargs)

    return make


def pytest_sessionstart(session) -> None:
    """Stop at once, saying why, when DATABASE_URL names a PostgreSQL server that is not there."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    host = db.get("HOST") or ""
    if not db["ENGINE"].endswith("postgresql") or not host or host.startswith("/"):
        return
    try:
        with socket.create_connection((host, int(db.get("PORT") or 5432)), timeout=3):
            return
    except OSError as exc:
        pytest.exit(
            f"PostgreSQL is not reachable at {host}:{db.get('PORT') or 5432} ({exc.strerror or exc}). "
            "Start it, or unset DATABASE_URL to run on SQLite.",
            returncode=3,
        )
