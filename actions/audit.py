"""Writing the audit trail, with secrets masked before anything is stored."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from actions.models import AuditEntry
from observability.redact import MASK, SECRET_VALUE, is_secret_key


def mask_secrets(value: Any, key: str = "") -> Any:
    """Return a copy of `value` with secret-looking keys and values replaced by a mask.

    Secret-looking as the logs judge it (observability.redact), but strict: a
    key merely ending in "key" ("idempotency_key") is kept.
    """
    if key and is_secret_key(key, strict=True):
        return MASK
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return SECRET_VALUE.sub(MASK, value)
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
