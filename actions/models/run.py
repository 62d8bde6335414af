"""A processing run: one per email, with a row per pipeline step."""

from __future__ import annotations

from django.db import models


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class StepName(models.TextChoices):
    # Declared in pipeline order; `RunStep.order` follows it.
    INTAKE = "intake", "Intake"
    ANALYSE = "analyse", "Analyse"
    ROUTE = "route", "Route"
    EXECUTE = "execute", "Execute"
    NOTIFY = "notify", "Notify"


STEP_ORDER = {name: index for index, name in enumerate(StepName.values)}


class ProcessingRun(models.Model):
    """Where one email is in the pipeline, and why."""

    email = models.ForeignKey("actions.Email", on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it failed, was paused or was cancelled.")
    backend = models.CharField(max_length=32, blank=True, help_text="The analysis backend that read the email.")
    model = models.CharField(max_length=100, blank=True, help_text="The LLM model, when one was used.")
    tokens_used = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=10, decimal_places=6, default=0, help_text="LLM cost in USD.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"], name="run_status_created")]

    def __str__(self) -> str:
        return f"Run #{self.pk} for email #{self.email_id}"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class RunStep(models.Model):
    """One step of a run, with its timings and log lines."""

    run = models.ForeignKey(ProcessingRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=16, choices=StepName.choices)
    order = models.PositiveSmallIntegerField(editable=False)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log = models.JSONField(default=list, blank=True, help_text="Log lines, oldest first.")

    class Meta:
        ordering = ["run_id", "order"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="runstep_unique_per_run")]

    def __str__(self) -> str:
        return f"{self.get_name_display()} ({self.get_status_display()})"

    def save(self, *args, **kwargs) -> None:
        self.order = STEP_ORDER[self.name]
        super().save(*args, **kwargs)
