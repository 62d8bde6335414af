"""Masking what log lines must not carry: secrets (tokens, passwords, credentials, keys) and email addresses.

Logs travel further than the database (log shippers, support tickets), so
they mask more than the audit trail does: every `...key=value` pair, and
people's addresses (jane@example.com -> j***@example.com). Pure functions,
importing nothing from the apps: logging is configured before they load.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

MASK = "********"
# Words that make a key secret, matched against the key's words ("access_token"
# -> access, token), so that "tokens_used" or "author" are kept.
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "authorization",
        "auth",
        "cookie",
        "credential",
        "credentials",
        "signature",
        "sessionid",
        "csrftoken",
    }
)
SECRET_PAIRS = frozenset({"apikey", "privatekey", "secretkey", "accesskey", "sessionid"})
_WORD = re.compile(r"[a-z]+")
# Credentials that look like credentials whatever precedes them: HTTP
# Authorization values (Bearer, Basic, DRF's Token) and OpenAI-style keys.
SECRET_VALUE = re.compile(
    r"\bBearer\s+\S+"
    r"|(?i:\bbearer)\s+[A-Za-z]*[0-9._~+/=-][A-Za-z0-9._~+/=-]*"
    r"|\bBasic\s+[A-Za-z0-9+/](?=[a-z]*[0-9+/=A-Z])[A-Za-z0-9+/]{7,}={0,2}"
    r"|\bToken\s+[0-9a-f]{40}\b"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
)
# name=value, name: value, "name": "value" (query strings, headers, reprs, JSON).
# The value is matched separately, so a harmless pair never swallows the next one.
_KEY = re.compile(r"""(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[=:]\s*["']?""")
_VALUE = re.compile(r"""(?:(?:Bearer|Basic|Token|Digest)\s+)?[^\s"'&,;)}\]]+""")
_EMAIL = re.compile(r"\b(?P<first>[A-Za-z0-9])[A-Za-z0-9._%+-]*@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)\b")


def is_secret_key(key: str, *, strict: bool = False) -> bool:
    """Whether a value under `key` is a secret. Not strict (logs), any `...key` counts: `key=`, `license_key=`."""
    # camelCase counts as words too: "refreshToken" -> refresh, token.
    words = _WORD.findall(re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())
    joined = {a + b for a, b in itertools.pairwise(words)}
    if set(words) & SECRET_WORDS or joined & SECRET_PAIRS:
        return True
    return not strict and bool(words) and words[-1] == "key"


def mask_address(match: re.Match) -> str:
    return f"{match['first']}***@{match['domain']}"


def redact_text(text: str) -> str:
    """The text with credentials, secret `key=value` pairs and email addresses masked."""
    text = _mask_pairs(SECRET_VALUE.sub(MASK, text))
    return _EMAIL.sub(mask_address, text)


def _mask_pairs(text: str) -> str:
    kept, done = [], 0
    for key in _KEY.finditer(text):
        if key.start() < done or not is_secret_key(key["key"]):
            continue
        value = _VALUE.match(text, key.end())
        if value:
            kept += [text[done : key.end()], MASK]
            done = value.end()
    return "".join([*kept, text[done:]])


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` (text, numbers, dicts and lists of them) fit for a log line."""
    if key and is_secret_key(key):
        return MASK
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact_text(str(value))
