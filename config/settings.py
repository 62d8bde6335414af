"""Mailroom settings: every value comes from the environment, with embedded defaults.

The embedded default is a single machine: SQLite in WAL mode, the django-q2
ORM broker, local rules, outgoing mail kept in the outbox. Environment
variables (documented in README.md, "Configuration") switch each part.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_counts, env_decimal, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything the running app writes (SQLite file, development key, uploads)
# lives here, outside git.
DATA_DIR = (BASE_DIR / env_str("MAILROOM_DATA_DIR", "var")).resolve()  # relative paths start at BASE_DIR

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. In production, set SECRET_KEY (or SECRET_KEY_FILE) to a "
            "long random value, e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(50))'. "
            "For development on your own machine, set DEBUG=true instead (./scripts/start does)."
        )
    # Development only: generate a key once and keep it in the data folder, so
    # sessions and signed links survive restarts without a key in the repository.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_q",
    "actions",
    "approvals",
    "teams",
    "integrations",
]

MIDDLEWARE = [
    # First, so every log line of the request, and every response, carries its id.
    "observability.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------

_SQLITE_OPTIONS = {
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue on the busy
    # timeout instead of one failing with "database is locked" on upgrade.
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def _database() -> dict:
    url = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'mailroom.sqlite3'}")
    try:
        # Workers run task after task, and django-q2 closes an expired connection before each: with 0,
        # every action paid for a new connection (a PostgreSQL backend; SQLite's schema read and pragmas).
        # CONN_HEALTH_CHECKS (below) replaces a connection that dropped meanwhile.
        config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Mailroom understands: {exc}") from exc
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        config["OPTIONS"] = {**_SQLITE_OPTIONS, **config.get("OPTIONS", {})}
        # A file, not Django's shared in-memory default, so that tests with
        # threads and worker subprocesses see WAL and the busy timeout too.
        config["TEST"] = {"NAME": str(DATA_DIR / "test_mailroom.sqlite3")}
    elif engine != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_URL uses {engine}; Mailroom supports sqlite:/// and postgres:// URLs.")
    config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Queue (django-q2) ------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
Q_TIMEOUT = env_int("Q_TIMEOUT", 300, minimum=1)
Q_WORKERS = env_int("Q_WORKERS", 2, minimum=1)
Q_QUEUE_LIMIT = env_int("Q_QUEUE_LIMIT", Q_WORKERS * 2, minimum=1)

Q_CLUSTER = {
    "name": "mailroom",
    "workers": Q_WORKERS,
    "timeout": Q_TIMEOUT,
    # A task may sit in a worker's memory behind queue_limit / workers others
    # before it runs; retry must outlast that, or the broker redelivers a task
    # that is merely waiting (STYLE.md, django-q2).
    "retry": Q_TIMEOUT * (1 + Q_QUEUE_LIMIT // Q_WORKERS) + 30,
    "queue_limit": Q_QUEUE_LIMIT,
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 3, minimum=1),
    "ack_failures": True,
    # Outcomes are recorded on our own rows; django-q2 keeps a short history
    # of successes only, which also keeps the SQLite monitor from locking.
    "save_limit": env_int("Q_SAVE_LIMIT", 100, minimum=-1),
    "catch_up": False,
    "label": "Task queue",
    "time_zone": "UTC",
}
# Lanes: urgent actions go to a queue of their own, served by a cluster of
# its own (Q_CLUSTER_NAME=urgent manage.py qcluster), so a backlog of normal
# work never delays them. Only the main cluster runs the scheduler.
URGENT_LANE = "urgent"
Q_CLUSTER["ALT_CLUSTERS"] = {
    URGENT_LANE: {"workers": env_int("Q_URGENT_WORKERS", 1, minimum=1), "scheduler": False},
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5

# --- Auth and permissions ---------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous visitors hold no object permissions.
GUARDIAN_MONKEY_PATCH_USER = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Approvers who are not staff log in here (the admin's login is for staff only).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "actions.api.pagination.Pages",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1),
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    # Requests per client: strangers (by address) and signed-in users (by user).
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "60/minute"),
        "user": env_str("API_THROTTLE_USER", "1200/minute"),
    },
    "DEFAULT_SCHEMA_CLASS": "actions.api.openapi.MailroomAutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mailroom API",
    "DESCRIPTION": "Email turned into approved, audited work. Token (`Authorization: Token ...`) or session auth.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The interactive page's scripts come from this installation, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" (or "source", "role"): one named enum each.
    "ENUM_NAME_OVERRIDES": {
        "ActionStatusEnum": "actions.models.ActionStatus",
        "ActionSourceEnum": "actions.models.ActionSource",
        "EmailStatusEnum": "actions.models.EmailStatus",
        "EmailSourceEnum": "actions.models.EmailSource",
        "RunStatusEnum": "actions.models.RunStatus",
        "ApprovalStatusEnum": "approvals.models.ApprovalStatus",
        "RoleEnum": "teams.models.Role",
    },
}

# --- Internationalisation ---------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and uploads -----------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "media/"
STORAGES = {
    # The emails' own attachments (media); always on this machine.
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    # Copies made by upload_file: set below by FILE_STORAGE (Integrations, Files).
    "uploads": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
}

# --- Mail -------------------------------------------------------------------

EMAIL_HOST = env_str("EMAIL_HOST")
# Who delivers the outbox: "smtp" (EMAIL_HOST...), "console" (printed: the
# embedded default keeps outgoing mail in the outbox), "apple" (Apple Mail,
# macOS only) or a web API through django-anymail. auto: smtp when EMAIL_HOST
# is set, else console. EMAIL_BACKEND, a class path, overrides the choice.
# Each provider's settings, as anymail names them; each is read from the
# environment under the same name (and NAME_FILE), e.g. POSTMARK_SERVER_TOKEN.
# <PROVIDER>_API_URL points the provider at another address (a proxy, a test server).
ANYMAIL_PROVIDER_SETTINGS = {
    "amazon_ses": ("CONFIGURATION_SET_NAME",),
    "brevo": ("API_KEY",),
    "mailgun": ("API_KEY", "SENDER_DOMAIN"),
    "mailjet": ("API_KEY", "SECRET_KEY"),
    "postmark": ("SERVER_TOKEN", "MESSAGE_STREAM"),
    "resend": ("API_KEY",),
    "sendgrid": ("API_KEY",),
    "sparkpost": ("API_KEY",),
}
EMAIL_PROVIDER = env_choice("EMAIL_PROVIDER", "auto", ("auto", "smtp", "console", "apple", *ANYMAIL_PROVIDER_SETTINGS))
if EMAIL_PROVIDER == "auto":
    EMAIL_PROVIDER = "smtp" if EMAIL_HOST else "console"
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    {
        "smtp": "django.core.mail.backends.smtp.EmailBackend",
        "console": "django.core.mail.backends.console.EmailBackend",
        "apple": "integrations.apple.AppleMailBackend",
    }.get(EMAIL_PROVIDER, f"anymail.backends.{EMAIL_PROVIDER}.EmailBackend"),
)
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mailroom@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ANYMAIL = {
    setting: value
    for provider, names in ANYMAIL_PROVIDER_SETTINGS.items()
    for setting in (f"{provider.upper()}_{name}" for name in (*names, "API_URL"))
    if (value := env_str(setting))
}
# Amazon SES goes through boto3, which also finds AWS_* credentials and
# AWS_ENDPOINT_URL_SESV2 itself; these variables say the same with NAME_FILE support.
ANYMAIL["AMAZON_SES_CLIENT_PARAMS"] = {
    "config": {"connect_timeout": EMAIL_TIMEOUT, "read_timeout": EMAIL_TIMEOUT},
    **{
        name: value
        for name, variable in (
            ("region_name", "AMAZON_SES_REGION"),
            ("endpoint_url", "AMAZON_SES_ENDPOINT_URL"),
            ("aws_access_key_id", "AMAZON_SES_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AMAZON_SES_SECRET_ACCESS_KEY"),
        )
        if (value := env_str(variable))
    },
}
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive; set only one.")

# --- Intelligence -----------------------------------------------------------

# auto: the openai backend when OPENAI_API_KEY or OPENAI_BASE_URL is set, else local rules.
ANALYSIS_BACKEND = env_str("ANALYSIS_BACKEND", "auto").lower()
if ANALYSIS_BACKEND not in {"auto", "local", "openai"}:
    raise ImproperlyConfigured(f"ANALYSIS_BACKEND={ANALYSIS_BACKEND!r}: use auto, local or openai.")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENAI_MODEL = env_str("OPENAI_MODEL", "gpt-4o-mini")
OPENAI_TIMEOUT_SECONDS = env_int("OPENAI_TIMEOUT_SECONDS", 60, minimum=1)
OPENAI_MAX_RETRIES = env_int("OPENAI_MAX_RETRIES", 2, minimum=0)
# USD per million tokens, for the cost recorded on each run; 0 records none.
OPENAI_INPUT_PRICE_PER_MTOK = env_decimal("OPENAI_INPUT_PRICE_PER_MTOK")
OPENAI_OUTPUT_PRICE_PER_MTOK = env_decimal("OPENAI_OUTPUT_PRICE_PER_MTOK")
# How many analyses of one batch run at once (LLM calls wait on the network).
ANALYSIS_CONCURRENCY = env_int("ANALYSIS_CONCURRENCY", 16, minimum=1)
# Body text given to the analysis, at most; longer bodies are cut.
ANALYSIS_MAX_BODY_CHARS = env_int("ANALYSIS_MAX_BODY_CHARS", 12000, minimum=100)

# --- Intake -----------------------------------------------------------------

# The mailbox name for mail posted to the API or imported without one.
DEFAULT_MAILBOX = env_str("DEFAULT_MAILBOX", DEFAULT_FROM_EMAIL)
# Larger messages are quarantined without their content (and refused by the API).
MAX_MESSAGE_BYTES = env_int("MAX_MESSAGE_BYTES", 25 * 1024 * 1024, minimum=1024)
# Process each message as soon as it is stored (on a worker); off, `process_pending` does it.
PROCESS_ON_INTAKE = env_bool("PROCESS_ON_INTAKE", True)
# RFC 3834: at most one automatic reply per sender in this many hours.
AUTO_REPLY_PERIOD_HOURS = env_int("AUTO_REPLY_PERIOD_HOURS", 24 * 7, minimum=1)
# IMAP polling (imapclient). No host: no polling.
IMAP_HOST = env_str("IMAP_HOST")
IMAP_PORT = env_int("IMAP_PORT", 993, minimum=1)
IMAP_SSL = env_bool("IMAP_SSL", True)
IMAP_STARTTLS = env_bool("IMAP_STARTTLS", False)
IMAP_USER = env_str("IMAP_USER")
IMAP_PASSWORD = env_str("IMAP_PASSWORD")
IMAP_FOLDERS = env_list("IMAP_FOLDERS", ["INBOX"])
IMAP_MAILBOX = env_str("IMAP_MAILBOX", IMAP_USER or DEFAULT_MAILBOX)
IMAP_TIMEOUT_SECONDS = env_int("IMAP_TIMEOUT_SECONDS", 30, minimum=1)
IMAP_BATCH_SIZE = env_int("IMAP_BATCH_SIZE", 50, minimum=1)
IMAP_POLL_MINUTES = env_int("IMAP_POLL_MINUTES", 1, minimum=1)

# --- Integrations -------------------------------------------------------------
# One block per outside system. Each is chosen by a *_BACKEND variable (or by
# its URL being set); secrets may also come from NAME_FILE. README has a section
# per integration.

# Mailbox actions (archive_email): "imap" moves the message on the server
# (IMAP MOVE, and back for undo), "local" only flags it, "apple" uses Apple Mail.
MAILBOX_BACKEND = env_choice("MAILBOX_BACKEND", "imap" if IMAP_HOST else "local", ("local", "imap", "apple"))
IMAP_ARCHIVE_FOLDER = env_str("IMAP_ARCHIVE_FOLDER", "Archive")

# Calendar (schedule_meeting): invitations always go by email (iCalendar
# REQUEST/CANCEL); "caldav" also writes the event to a CalDAV calendar,
# "apple" to Apple Calendar. Reminders (set_reminder): "local" mails them when
# due; "caldav" also keeps them as VTODO (what Apple Reminders reads through
# iCloud), "apple" in Apple Reminders.
CALDAV_URL = env_str("CALDAV_URL")
CALDAV_USERNAME = env_str("CALDAV_USERNAME")
CALDAV_PASSWORD = env_str("CALDAV_PASSWORD")
# A calendar's display name or URL; empty: the account's first calendar.
CALDAV_CALENDAR = env_str("CALDAV_CALENDAR")
# Where reminders go as VTODO; empty: CALDAV_CALENDAR.
CALDAV_TODO_LIST = env_str("CALDAV_TODO_LIST")
CALDAV_TIMEOUT_SECONDS = env_int("CALDAV_TIMEOUT_SECONDS", 20, minimum=1)
CALENDAR_BACKEND = env_choice("CALENDAR_BACKEND", "caldav" if CALDAV_URL else "email", ("email", "caldav", "apple"))
REMINDER_BACKEND = env_choice("REMINDER_BACKEND", "caldav" if CALDAV_URL else "local", ("local", "caldav", "apple"))

# Tasks (create_task, delegate_task, mark_complete): "local" keeps them in
# Mailroom; "jira" (REST API v3) and "asana" create them there as well.
TASK_BACKEND = env_choice("TASK_BACKEND", "local", ("local", "jira", "asana"))
JIRA_URL = env_str("JIRA_URL")
JIRA_EMAIL = env_str("JIRA_EMAIL")
JIRA_API_TOKEN = env_str("JIRA_API_TOKEN")
JIRA_PROJECT_KEY = env_str("JIRA_PROJECT_KEY")
JIRA_ISSUE_TYPE = env_str("JIRA_ISSUE_TYPE", "Task")
JIRA_DONE_TRANSITION = env_str("JIRA_DONE_TRANSITION", "Done")
# Undoing mark_complete moves the issue by this transition.
JIRA_REOPEN_TRANSITION = env_str("JIRA_REOPEN_TRANSITION", "To Do")
# Undoing create_task deletes the issue; where the API user may not delete,
# this transition (e.g. "Won't Do") closes it instead. Empty: delete only.
JIRA_CANCEL_TRANSITION = env_str("JIRA_CANCEL_TRANSITION")
# Set the issue's priority (Low, Medium, High, Highest); off for projects whose screens lack it.
JIRA_SET_PRIORITY = env_bool("JIRA_SET_PRIORITY", False)
ASANA_TOKEN = env_str("ASANA_TOKEN")
ASANA_WORKSPACE = env_str("ASANA_WORKSPACE")
ASANA_PROJECT = env_str("ASANA_PROJECT")
ASANA_BASE_URL = env_str("ASANA_BASE_URL", "https://app.asana.com/api/1.0")
# Every web API call gives up after this long.
INTEGRATION_TIMEOUT_SECONDS = env_int("INTEGRATION_TIMEOUT_SECONDS", 10, minimum=1)

# Chat: urgent notices and escalations in Slack. With a bot token (chat:write
# scope) chat.postMessage to SLACK_CHANNEL (an ID or #name the bot is in);
# else the incoming webhook; else no chat. Token and webhook URL are secrets
# (SLACK_BOT_TOKEN_FILE, SLACK_WEBHOOK_URL_FILE). SLACK_API_URL is for tests.
SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL")
SLACK_BOT_TOKEN = env_str("SLACK_BOT_TOKEN")
SLACK_CHANNEL = env_str("SLACK_CHANNEL")
SLACK_API_URL = env_str("SLACK_API_URL", "https://slack.com/api/")

# Files (upload_file): copies go to the "uploads" storage, "filesystem" under
# MEDIA_ROOT, or "s3" (any S3-compatible service, through django-storages):
# private objects under AWS_LOCATION, linked by signed URLs.
FILE_STORAGE = env_choice("FILE_STORAGE", "filesystem", ("filesystem", "s3"))
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL")  # empty: Amazon S3 itself
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME")
AWS_S3_ADDRESSING_STYLE = env_choice("AWS_S3_ADDRESSING_STYLE", "auto", ("auto", "path", "virtual"))
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID")  # empty: boto3's own chain (instance role...)
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY")
AWS_LOCATION = env_str("AWS_LOCATION").strip("/")  # a key prefix inside the bucket
AWS_QUERYSTRING_EXPIRE = env_int("AWS_QUERYSTRING_EXPIRE", 3600, minimum=1)
if FILE_STORAGE == "s3":
    if not AWS_STORAGE_BUCKET_NAME:
        raise ImproperlyConfigured("FILE_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME.")
    STORAGES["uploads"] = {
        "BACKEND": "integrations.files.s3.UploadS3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL or None,
            "region_name": AWS_S3_REGION_NAME or None,
            "addressing_style": None if AWS_S3_ADDRESSING_STYLE == "auto" else AWS_S3_ADDRESSING_STYLE,
            "access_key": AWS_ACCESS_KEY_ID or None,
            "secret_key": AWS_SECRET_ACCESS_KEY or None,
            "location": AWS_LOCATION,
            "querystring_auth": True,
            "querystring_expire": AWS_QUERYSTRING_EXPIRE,
            "default_acl": None,  # the bucket's own policy: private unless made otherwise
        },
    }

# Apple Mail, Calendar and Reminders (macOS only, through osascript).
APPLE_MAIL_ACCOUNT = env_str("APPLE_MAIL_ACCOUNT")
APPLE_ARCHIVE_MAILBOX = env_str("APPLE_ARCHIVE_MAILBOX", "Archive")
APPLE_CALENDAR = env_str("APPLE_CALENDAR", "Calendar")
APPLE_REMINDERS_LIST = env_str("APPLE_REMINDERS_LIST", "Reminders")
# Each osascript run (one Mail, Calendar or Reminders command) gives up after this long.
APPLE_SCRIPT_TIMEOUT_SECONDS = env_int("APPLE_SCRIPT_TIMEOUT_SECONDS", 60, minimum=1)

# --- Mailroom ---------------------------------------------------------------

# How long a pending approval waits before it expires, unless its policy says otherwise.
APPROVAL_TIMEOUT = timedelta(hours=env_int("APPROVAL_TIMEOUT_HOURS", 48, minimum=1))
# How long an emailed approval link works, and whether the approver must also log in.
APPROVAL_LINK_MAX_AGE = timedelta(hours=env_int("APPROVAL_LINK_MAX_AGE_HOURS", 24 * 7, minimum=1))
APPROVAL_LINK_REQUIRES_LOGIN = env_bool("APPROVAL_LINK_REQUIRES_LOGIN", True)

# --- Execution ---------------------------------------------------------------

# Sends (send_reply, forward_email, approve_request) wait this long before
# they leave, so a person can still cancel them ("undo send").
SEND_DELAY_SECONDS = env_int("SEND_DELAY_SECONDS", 60, minimum=0)
# Attempts per action before it goes dead: a default, and per type
# ("send_reply=8,create_task=3").
RETRY_LIMIT = env_int("RETRY_LIMIT", 5, minimum=1)
RETRY_LIMITS = env_counts("RETRY_LIMITS")
RETRY_BASE_SECONDS = env_int("RETRY_BASE_SECONDS", 30, minimum=1)
RETRY_MAX_SECONDS = env_int("RETRY_MAX_SECONDS", 3600, minimum=1)
# A running action whose worker has not finished it within this time is
# taken back by the sweeper (the worker is presumed dead).
ACTION_LEASE_SECONDS = env_int("ACTION_LEASE_SECONDS", Q_TIMEOUT + 60, minimum=1)
# A queued action not started within this time is enqueued again (the Redis
# broker can lose a task that was in a dying worker's memory).
REQUEUE_AFTER_SECONDS = env_int("REQUEUE_AFTER_SECONDS", 300, minimum=1)
# Outgoing mail: the company's own domains, and other domains mail may go to.
# The original sender of the email is always allowed. "*" allows any domain.
INTERNAL_DOMAINS = [d.lower() for d in env_list("INTERNAL_DOMAINS", [DEFAULT_FROM_EMAIL.rpartition("@")[2]])]
ALLOWED_RECIPIENT_DOMAINS = [d.lower() for d in env_list("ALLOWED_RECIPIENT_DOMAINS")]
# Rate limits per hour: per action type ("send_reply=100,forward_email=20")
# and per recipient domain for outgoing mail.
RATE_LIMITS_PER_HOUR = env_counts("RATE_LIMITS_PER_HOUR")
DOMAIN_RATE_LIMIT_PER_HOUR = env_int("DOMAIN_RATE_LIMIT_PER_HOUR", 200, minimum=1)
MAX_ACTIONS_PER_EMAIL = env_int("MAX_ACTIONS_PER_EMAIL", 10, minimum=1)
# Circuit breaker per integration: this many transient failures in a row open
# it for the cool-down; actions needing it wait without spending attempts.
CIRCUIT_FAILURE_THRESHOLD = env_int("CIRCUIT_FAILURE_THRESHOLD", 5, minimum=1)
CIRCUIT_COOLDOWN_SECONDS = env_int("CIRCUIT_COOLDOWN_SECONDS", 60, minimum=1)
# A send found half-done after a crash: "resend" with the same Message-ID
# (clients drop the repeat), or "hold" it for a person.
OUTBOX_STUCK_SENDS = env_str("OUTBOX_STUCK_SENDS", "resend")
if OUTBOX_STUCK_SENDS not in {"resend", "hold"}:
    raise ImproperlyConfigured("OUTBOX_STUCK_SENDS must be resend or hold.")
# Domain of the Message-IDs Mailroom writes (never the host's name).
MESSAGE_ID_DOMAIN = env_str("MESSAGE_ID_DOMAIN", DEFAULT_FROM_EMAIL.rpartition("@")[2] or "mailroom.invalid")
UNDO_TOKEN_MAX_AGE = timedelta(hours=env_int("UNDO_TOKEN_MAX_AGE_HOURS", 24 * 7, minimum=1))
# upload_file: larger files are refused by their size alone, before any is read;
# the allowed types are judged by what the bytes are, not by names or declared types.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 25 * 1024 * 1024, minimum=1)
UPLOAD_ALLOWED_TYPES = env_list(
    "UPLOAD_ALLOWED_TYPES",
    ["application/pdf", "image/*", "text/plain", "text/csv", "application/vnd.openxmlformats-officedocument.*"],
)

# --- Security ---------------------------------------------------------------

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    # Behind a proxy that terminates TLS and sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging ----------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a log level.")
# json: one object per line (time, level, logger, message, request_id,
# action_id, extra fields), for log collectors; text: for people at a terminal.
LOG_FORMAT = env_choice("LOG_FORMAT", "text" if DEBUG else "json", ("text", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Every line gets the request and action ids, and has secrets and addresses masked.
        "context": {"()": "observability.logs.ContextFilter"},
        "redact": {"()": "observability.logs.RedactFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"},
        "json": {"()": "observability.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "observability.logs.StderrHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Django's own handlers would print these a second time, unmasked: send them through ours.
    "loggers": {
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
    },
}

# --- Health and metrics ------------------------------------------------------

# /metrics: with a token, only `Authorization: Bearer <token>` (or staff);
# without, only direct requests from loopback or private addresses (or staff).
METRICS_TOKEN = env_str("METRICS_TOKEN")
# /health/ answers 503 when no worker's heartbeat is seen. Off by default: a
# web process without workers still serves; the workers check shows it.
HEALTH_REQUIRE_WORKERS = env_bool("HEALTH_REQUIRE_WORKERS", False)
# Load balancers and scrapers often ask over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# django-q2 clusters write their heartbeat (Stat) to Redis with the Redis
# broker, else to this cache: a file cache in the data folder, which every
# process on the machine shares (the default memory cache is per process, so
# the web process would never see a worker).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "worker_stats": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(DATA_DIR / "worker-stats"),
    },
}
Q_CLUSTER["cache"] = "worker_stats"
