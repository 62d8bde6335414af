"""Asana (REST API 1.0) as the task backend: a task per task, completed true/false, delete for undo.

Bearer auth with ASANA_TOKEN; bodies are wrapped in {"data": ...}. Each task
carries the external gid mailroom-action-<id> (Asana's custom external data),
so a create whose row was lost finds its task at /tasks/external:<gid>
instead of making a second one.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import quote

from django.conf import settings

from integrations.http import HTTPError, request_json
from integrations.tasks.remote import Made, NewTask, Person, RemoteTaskBackend

# What Mailroom reads back of a task it made or found.
TASK_FIELDS = "opt_fields=gid,permalink_url"


class AsanaTaskBackend(RemoteTaskBackend):
    """Tasks in ASANA_PROJECT (or ASANA_WORKSPACE) of Asana."""

    name = "asana"
    system = "Asana"
    label = "Asana task"

    def __init__(self) -> None:
        self.require_settings("ASANA_BASE_URL", "ASANA_TOKEN")
        if not (settings.ASANA_PROJECT or settings.ASANA_WORKSPACE):
            self.require_settings("ASANA_PROJECT")
        self.base = settings.ASANA_BASE_URL.rstrip("/")

    def signed_in_as(self) -> str:
        return (self._call("GET", "/users/me?opt_fields=name") or {}).get("name") or ""

    def find(self, marker: str) -> Made | None:
        try:
            found = self._call("GET", f"/tasks/external:{quote(marker)}?{TASK_FIELDS}")
        except HTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return self._made(found) if found else None

    def make(self, task: NewTask) -> Made:
        fields: dict[str, Any] = {
            "name": " ".join(task.title.split()),
            "notes": task.notes,
            "external": {"gid": task.marker},
        }
        if settings.ASANA_WORKSPACE:
            fields["workspace"] = settings.ASANA_WORKSPACE
        if settings.ASANA_PROJECT:
            fields["projects"] = [settings.ASANA_PROJECT]
        if task.due_at:
            fields["due_at"] = task.due_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if task.assignee and task.assignee.email:
            try:
                assigned = {**fields, "assignee": task.assignee.email}
                return self._made(self._call("POST", f"/tasks?{TASK_FIELDS}", assigned))
            except HTTPError as exc:
                if exc.status != 400:
                    raise
                # Asana refuses an assignee it does not know: the task is made unassigned, as Jira's comment-only path.
        return self._made(self._call("POST", f"/tasks?{TASK_FIELDS}", fields))

    def set_completed(self, external_id: str, completed: bool) -> None:
        self._call("PUT", f"/tasks/{quote(external_id)}", {"completed": completed})

    def remove(self, external_id: str) -> None:
        self._call("DELETE", f"/tasks/{quote(external_id)}")

    def hand_over(self, external_id: str, to: Person | None) -> None:
        gid = quote(external_id)
        try:
            self._call("PUT", f"/tasks/{gid}", {"assignee": to.email if to else None})
            assigned = True
        except HTTPError as exc:
            if exc.status != 400 or to is None:
                raise
            assigned = False  # Not an Asana user of this workspace: the comment still says who has it.
        if to is None:
            text = "Mailroom took this task back: nobody has it now."
        else:
            text = f"Mailroom handed this task to {to.name} ({to.email})."
            if not assigned:
                text += " Asana does not know that address, so the assignee is unchanged."
        self._call("POST", f"/tasks/{gid}/stories", {"text": text})

    def _made(self, task: dict[str, Any]) -> Made:
        return Made(id=task["gid"], url=task.get("permalink_url") or "")

    def _call(self, method: str, path: str, fields: dict[str, Any] | None = None) -> Any:
        payload = None if fields is None else {"data": fields}
        reply = request_json(method, self.base + path, payload=payload, auth=settings.ASANA_TOKEN).data
        return (reply or {}).get("data")
