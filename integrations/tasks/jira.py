"""Jira Cloud (REST API v3) as the task backend: an issue per task, transitions for done and reopen, delete for undo.

Basic auth with JIRA_EMAIL and JIRA_API_TOKEN. Each issue carries the label
mailroom-action-<id>: a create whose row was lost finds its issue by JQL
instead of making a second one.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.utils import timezone

from integrations.errors import IntegrationError
from integrations.http import HTTPError, request_json
from integrations.tasks.remote import Made, NewTask, Person, RemoteTaskBackend

# Mailroom's priorities (10 low to 40 urgent) as the names of Jira's default priority scheme.
PRIORITIES = {10: "Low", 20: "Medium", 30: "High", 40: "Highest"}
# Jira's status categories: where an issue counts as done, and as open.
DONE = frozenset({"done"})
OPEN = frozenset({"new", "indeterminate"})
SUMMARY_CHARS = 255


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document: a paragraph per blank-line block, line breaks kept."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.replace("\r", "").strip()):
        content: list[dict[str, Any]] = []
        for number, line in enumerate(block.split("\n")):
            if number:
                content.append({"type": "hardBreak"})
            if line:  # ADF refuses empty text nodes.
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def _jql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class JiraTaskBackend(RemoteTaskBackend):
    """Tasks as issues in JIRA_PROJECT_KEY of the Jira Cloud site at JIRA_URL."""

    name = "jira"
    system = "Jira"
    label = "Jira issue"

    def __init__(self) -> None:
        self.require_settings("JIRA_URL", "JIRA_EMAIL", "JIRA_API_TOKEN", "JIRA_PROJECT_KEY")
        self.base = settings.JIRA_URL.rstrip("/")

    def signed_in_as(self) -> str:
        return (self._call("GET", "/rest/api/3/myself") or {}).get("displayName") or ""

    def find(self, marker: str) -> Made | None:
        jql = f"project = {_jql_string(settings.JIRA_PROJECT_KEY)} AND labels = {_jql_string(marker)}"
        found = self._call("POST", "/rest/api/3/search/jql", {"jql": jql, "fields": ["summary"], "maxResults": 1})
        issues = (found or {}).get("issues") or []
        return self._made(issues[0]["key"]) if issues else None

    def make(self, task: NewTask) -> Made:
        fields: dict[str, Any] = {
            "project": {"key": settings.JIRA_PROJECT_KEY},
            "summary": " ".join(task.title.split())[:SUMMARY_CHARS],
            "issuetype": {"name": settings.JIRA_ISSUE_TYPE},
            "description": adf(task.notes),
            "labels": ["mailroom", task.marker],
        }
        if settings.JIRA_SET_PRIORITY:
            fields["priority"] = {"name": PRIORITIES.get(task.priority, "Medium")}
        if task.due_at:
            # Jira's due date is a day, in the team's time zone.
            fields["duedate"] = timezone.localtime(task.due_at).date().isoformat()
        if task.assignee and (account := self._account(task.assignee.email)):
            fields["assignee"] = {"accountId": account}
        created = self._call("POST", "/rest/api/3/issue", {"fields": fields})
        return self._made(created["key"])

    def set_completed(self, external_id: str, completed: bool) -> None:
        if completed:
            self._transition(external_id, settings.JIRA_DONE_TRANSITION, reached=DONE)
        else:
            self._transition(external_id, settings.JIRA_REOPEN_TRANSITION, reached=OPEN)

    def remove(self, external_id: str) -> None:
        try:
            self._call("DELETE", f"/rest/api/3/issue/{quote(external_id)}")
        except HTTPError as exc:
            if exc.status != 403:
                raise
            if not settings.JIRA_CANCEL_TRANSITION:
                raise IntegrationError(
                    f"Jira refused to delete {external_id} (HTTP 403): the API user lacks the Delete issues "
                    "permission. Grant it, or set JIRA_CANCEL_TRANSITION to a transition that closes the issue.",
                    permanent=True,
                ) from None
            self._transition(external_id, settings.JIRA_CANCEL_TRANSITION, reached=DONE)

    def hand_over(self, external_id: str, to: Person | None) -> None:
        key = quote(external_id)
        account = self._account(to.email) if to else None
        if to is None or account:
            self._call("PUT", f"/rest/api/3/issue/{key}/assignee", {"accountId": account})
        if to is None:
            text = "Mailroom took this issue back: nobody has it now."
        else:
            text = f"Mailroom handed this issue to {to.name} ({to.email})."
            if account is None:
                text += " Jira has no user Mailroom could find by that address, so the assignee is unchanged."
        self._call("POST", f"/rest/api/3/issue/{key}/comment", {"body": adf(text)})

    def _account(self, address: str) -> str | None:
        """The accountId of the Jira user with this address, or None when there is none to be sure of."""
        found = self._call("GET", f"/rest/api/3/user/search?query={quote(address)}") or []
        people = [u for u in found if u.get("active", True) and u.get("accountType", "atlassian") == "atlassian"]
        for user in people:
            if (user.get("emailAddress") or "").casefold() == address.casefold():
                return user["accountId"]
        # Users may hide their address from the API; one person found by the whole address is them.
        if len(people) == 1 and not people[0].get("emailAddress"):
            return people[0]["accountId"]
        return None

    def _transition(self, external_id: str, name: str, *, reached: frozenset[str]) -> None:
        """Move the issue by the transition called `name` (or leading to a status of that name)."""
        key = quote(external_id)
        offered = (self._call("GET", f"/rest/api/3/issue/{key}/transitions") or {}).get("transitions") or []
        for transition in offered:
            target = (transition.get("to") or {}).get("name", "")
            if name.casefold() in {transition.get("name", "").casefold(), target.casefold()}:
                self._call("POST", f"/rest/api/3/issue/{key}/transitions", {"transition": {"id": transition["id"]}})
                return
        status = self._call("GET", f"/rest/api/3/issue/{key}?fields=status")["fields"]["status"]
        if status.get("statusCategory", {}).get("key") in reached:
            return  # Already there: a retry after the transition went through, or someone moved it in Jira.
        offers = ", ".join(repr(t.get("name")) for t in offered) or "none"
        raise IntegrationError(
            f"Jira offers no transition named {name!r} for {external_id}, which is {status.get('name')!r} "
            f"(it offers {offers}).",
            permanent=True,
        )

    def _made(self, key: str) -> Made:
        return Made(id=key, url=f"{self.base}/browse/{key}")

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        auth = (settings.JIRA_EMAIL, settings.JIRA_API_TOKEN)
        return request_json(method, self.base + path, payload=payload, auth=auth).data
