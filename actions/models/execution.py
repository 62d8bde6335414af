"""The kill switch: one row saying whether actions may run."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExecutionSwitch(models.Model):
    """A single row (pk=1). While paused, nothing executes; intake and analysis go on."""

    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "execution switch"

    def __str__(self) -> str:
        return "Execution paused" if self.paused else "Execution running"

    @classmethod
    def current(cls) -> ExecutionSwitch:
        return cls.objects.get_or_create(pk=1)[0]

    @classmethod
    def is_paused(cls) -> bool:
        return cls.objects.filter(pk=1, paused=True).exists()


class DomainSend(models.Model):
    """One action sending to one recipient domain: what the per-domain rate limit counts."""

    domain = models.CharField(max_length=253)
    action = models.ForeignKey("actions.Action", on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["domain", "action"], name="domainsend_once_per_action")]
        indexes = [models.Index(fields=["domain", "at"], name="domainsend_domain_at")]

    def __str__(self) -> str:
        return f"{self.domain} at {self.at:%Y-%m-%d %H:%M}"
