"""The audit trail: who did what, when, to which object. Append-only."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AuditEntryIsAppendOnly(Exception):
    """Raised on any attempt to change or remove an audit entry."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # The one change allowed: a deleted user's link (SET_NULL); actor_label keeps the name.
        if kwargs == {"actor": None}:
            return super().update(**kwargs)
        raise AuditEntryIsAppendOnly("Audit entries cannot be updated.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AuditEntryIsAppendOnly("Audit entries cannot be updated.")

    def bulk_create(self, objs, batch_size=None, ignore_conflicts=False, update_conflicts=False, **kwargs):
        # update_conflicts turns the INSERT into an upsert that rewrites existing entries.
        if update_conflicts:
            raise AuditEntryIsAppendOnly("Audit entries cannot be updated.")
        return super().bulk_create(objs, batch_size=batch_size, ignore_conflicts=ignore_conflicts, **kwargs)

    def delete(self):
        raise AuditEntryIsAppendOnly("Audit entries cannot be deleted.")

    def for_object(self, obj: models.Model) -> AuditQuerySet:
        return self.filter(target_type=ContentType.objects.get_for_model(obj), target_id=str(obj.pk))


class AuditEntry(models.Model):
    """One recorded event. Write entries with actions.audit.record_audit, which masks secrets."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the trail stays readable after the user is deleted,
    # and names non-human actors such as "worker" or "system".
    actor_label = models.CharField("actor", max_length=150)
    event = models.CharField(max_length=64, db_index=True)
    target_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField("object", max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        # Django's own paths (deletion collectors, related managers) use the base manager: ours, not a plain one.
        base_manager_name = "objects"
        indexes = [models.Index(fields=["target_type", "target_id", "created_at"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.event} by {self.actor_label}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AuditEntryIsAppendOnly("Audit entries cannot be updated.")
        # Always an INSERT: Django would turn saving a new instance that carries an
        # existing id into an UPDATE of that entry.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def _do_update(self, base_qs, using, pk_val, *args, **kwargs) -> bool:
        # Model.save_base() and loaddata's raw saves reach the UPDATE without save():
        # an entry that exists is never rewritten; one that does not is inserted.
        if base_qs.filter(pk=pk_val).exists():
            raise AuditEntryIsAppendOnly("Audit entries cannot be updated.")
        return False

    def delete(self, *args, **kwargs):
        raise AuditEntryIsAppendOnly("Audit entries cannot be deleted.")
