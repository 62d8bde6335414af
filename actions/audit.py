"""Writing the audit trail, with secrets masked before anything is stored."""

from __future__ import annotations

import itertools
import re
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from actions.models import AuditEntry

MASK = "********"
# Keys whose values are never stored in the trail, wherever they are nested.
# Matched against the words of the key ("access_token" -> access, token), so
# that "tokens_used" or "author" are kept.
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
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
_SECRET_PAIRS = frozenset({"apikey", "privatekey", "secretkey", "accesskey", "sessionid"})
_WORD = re.compile(r"[a-z]+")  # letters only: "password1" is a password
# Values that look like secrets even under an innocent key: HTTP credentials
# and OpenAI-style keys. "Bearer x" as headers write it, or any "bearer" with
# a token-looking word after it, so prose like "the bearer of news" is kept.
_SECRET_VALUE = re.compile(
    r"\bBearer\s+\S+"
    r"|(?i:\bbearer)\s+[A-Za-z]*[0-9._~+/=-][A-Za-z0-9._~+/=-]*"
    # Basic credentials are base64: a digit, symbol or capital beyond the first letter.
    r"|\bBasic\s+[A-Za-z0-9+/](?=[a-z]*[0-9+/=A-Z])[A-Za-z0-9+/]{7,}={0,2}"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
)


def _is_secret_key(key: str) -> bool:
    # camelCase counts as words too: "refreshToken" -> refresh, token.
    words = _WORD.findall(re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())
    # "api_key", "X-Api-Key", "private_key": "key" alone is too common to mask.
    joined = {a + b for a, b in itertools.pairwise(words)}
    return bool(set(words) & _SECRET_WORDS or joined & _SECRET_PAIRS)


def mask_secrets(value: Any, key: str = "") -> Any:
    """Return a copy of `value` with secret-looking keys and values replaced by a mask."""
    if key and _is_secret_key(key):
        return MASK
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(MASK, value)
    return value


def record_audit(
    event: str,
    *,
    target: models.Model | None = None,
    acting_user=None,
    actor: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the audit trail.

    `acting_user` is the person responsible, if any; `actor` names a non-human
    one ("worker", "system", "policy") and defaults to the user's name,
    "anonymous" for a user who is not logged in, and "system" when there is none.
    """
    if acting_user is not None and not acting_user.is_authenticated:
        # Someone without an account (a public link or endpoint): not the system itself.
        acting_user = None
        label = actor or "anonymous"
    else:
        label = actor or (acting_user.get_username() if acting_user else "system")
    return AuditEntry.objects.create(
        event=event,
        actor=acting_user,
        actor_label=label,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        details=mask_secrets(details or {}),
    )
