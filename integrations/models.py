"""Data the embedded (local) backends keep in Mailroom's own database."""

from __future__ import annotations

from django.db import models


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class LocalTask(models.Model):
    """A task in the local task store, the default task backend (Jira and Asana are the others)."""

    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    priority = models.PositiveSmallIntegerField(default=20, help_text="As Action.priority: 10 low to 40 urgent.")
    assignee = models.ForeignKey(
        "teams.TeamMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="local_tasks"
    )
    email = models.ForeignKey("actions.Email", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The action that created it: creating twice for one action returns the same task.
    action = models.OneToOneField(
        "actions.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="local_task"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["status", "due_at", "-created_at"]
        indexes = [models.Index(fields=["assignee", "status"], name="localtask_assignee_status")]

    def __str__(self) -> str:
        return self.title
