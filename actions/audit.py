"""Writing the audit trail, with secrets masked before anything is stored."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from actions.models import AuditEntry

MASK = "********"
# Keys whose values are never stored in the trail, wherever they are nested.
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|auth(orization)?|cookie|credential|private[_-]?key|signature",
    re.IGNORECASE,
)
# Values that look like secrets even under an innocent key.
_SECRET_VALUE = re.compile(r"\b(Bearer|Basic)\s+\S+|\bsk-[A-Za-z0-9_-]{8,}", re.IGNORECASE)


def mask_secrets(value: Any, key: str = "") -> Any:
    """Return a copy of `value` with secret-looking keys and values replaced by a mask."""
    if key and _SECRET_KEY.search(key):
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
    one ("worker", "system", "policy") and defaults to the user's name.
    """
    if acting_user is not None and not acting_user.is_authenticated:
        acting_user = None
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
