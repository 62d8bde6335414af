"""Loopback Jira Cloud and Asana: each checks every request against the shape the service documents.

Method, path, Authorization, Content-Type and JSON body (ADF for Jira text,
the {"data": ...} wrapper for Asana) are checked; what does not fit is
recorded in `problems` (the fixtures in tests/task_servers.py fail the test
if any). They answer as the services do and keep the issues or tasks in
memory so tests can look at them. Tests make the next request fail with
`fail_next(status, retry_after=...)`.
"""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime
from typing import Any, ClassVar
from urllib.parse import unquote

from tests.loopback import Answer, LoopbackService, Refusal, basic_auth, refuse


class TaskSystem(LoopbackService):
    """A loopback task system, and what tests that hold for Jira and Asana alike look at in it."""

    BACKEND: ClassVar[str]  # Its TASK_BACKEND.
    LABEL: ClassVar[str]  # How Mailroom's errors call one task there: "Jira issue".
    NOUN: ClassVar[str]  # How Mailroom's comments on a task call it: "issue".
    URL_SETTING: ClassVar[str]
    TOKEN_SETTING: ClassVar[str]

    def add_user(self, email: str, name: str) -> str:
        """Someone it knows by this address; returns their id there."""
        raise NotImplementedError

    def account(self, email: str) -> str:
        """The id there of the user with this address."""
        raise NotImplementedError

    def ids(self) -> list[str]:
        """The ids of the tasks it holds."""
        raise NotImplementedError

    def assignee(self, external_id: str) -> str | None:
        raise NotImplementedError

    def state(self, external_id: str) -> str:
        """Where the task stands: "open", "done", or the name of any other state it is in."""
        raise NotImplementedError

    def comments(self, external_id: str) -> list[str]:
        raise NotImplementedError

    def forget(self, external_id: str) -> None:
        """Delete the task, as someone working there would."""
        raise NotImplementedError

    def lookup(self, marker: str) -> tuple[str, str]:
        """The request by which a create looks for the task an earlier create for this marker made."""
        raise NotImplementedError


# --- Jira Cloud --------------------------------------------------------------------------


def adf_problems(doc: Any) -> list[str]:
    """What makes `doc` not an Atlassian Document Format document of paragraphs, text and line breaks."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return ["not an ADF doc of version 1"]
    problems = []
    for paragraph in doc.get("content") or [None]:
        if not isinstance(paragraph, dict) or paragraph.get("type") != "paragraph":
            problems.append(f"{paragraph!r} is not a paragraph")
            continue
        for node in paragraph.get("content", []):
            if node.get("type") == "text":
                if not isinstance(node.get("text"), str) or not node["text"]:
                    problems.append("a text node has no text")
            elif node != {"type": "hardBreak"}:
                problems.append(f"{node!r} is not text or a hardBreak")
    return problems


def adf_text(doc: dict[str, Any]) -> str:
    """The plain text of an ADF document: paragraphs apart by a blank line."""
    return "\n\n".join(
        "".join(node.get("text", "\n") for node in paragraph.get("content", [])) for paragraph in doc["content"]
    )


class FakeJira(TaskSystem):
    """Jira Cloud's REST API v3 for one project, OPS; the workflow's transitions are named after their statuses."""

    BACKEND, LABEL, NOUN = "jira", "Jira issue", "issue"
    URL_SETTING, TOKEN_SETTING = "JIRA_URL", "JIRA_API_TOKEN"
    PROJECT = "OPS"
    CATEGORIES = {"To Do": "new", "In Progress": "indeterminate", "Done": "done", "Won't Do": "done"}
    TRANSITION_IDS = {"To Do": "11", "In Progress": "21", "Done": "31", "Won't Do": "41"}
    FIELDS = {"project", "summary", "issuetype", "description", "labels", "priority", "duedate", "assignee"}
    PRIORITIES = {"Lowest", "Low", "Medium", "High", "Highest"}

    def __init__(self, email: str, token: str) -> None:
        super().__init__(basic_auth(email, token))
        self.issues: dict[str, dict[str, Any]] = {}
        self.users: list[dict[str, Any]] = []
        self.can_delete = True
        self.reachable = set(self.CATEGORIES)  # The statuses transitions lead to; a test may take one away.
        self._ids = itertools.count(10001)
        issue = r"/rest/api/3/issue/([A-Z]+-\d+)"
        self.route("GET", "/rest/api/3/myself", self._myself)
        self.route("GET", "/rest/api/3/user/search", self._user_search)
        self.route("POST", "/rest/api/3/search/jql", self._search)
        self.route("POST", "/rest/api/3/issue", self._create)
        self.route("GET", issue, self._issue)
        self.route("DELETE", issue, self._delete)
        self.route("GET", issue + "/transitions", self._transitions)
        self.route("POST", issue + "/transitions", self._transition)
        self.route("PUT", issue + "/assignee", self._assign)
        self.route("POST", issue + "/comment", self._comment)

    def add_user(self, email: str, name: str, *, email_visible: bool = True) -> str:
        account = f"acct-{len(self.users) + 1}"
        self.users.append({"accountId": account, "email": email, "displayName": name, "visible": email_visible})
        return account

    def account(self, email: str) -> str:
        return next(u["accountId"] for u in self.users if u["email"] == email)

    def ids(self) -> list[str]:
        return list(self.issues)

    def assignee(self, external_id: str) -> str | None:
        return self.issues[external_id]["assignee"]

    def state(self, external_id: str) -> str:
        status = self.issues[external_id]["status"]
        return {"To Do": "open", "Done": "done"}.get(status, status)

    def comments(self, external_id: str) -> list[str]:
        return self.issues[external_id]["comments"]

    def forget(self, external_id: str) -> None:
        del self.issues[external_id]

    def lookup(self, marker: str) -> tuple[str, str]:
        return ("POST", "/rest/api/3/search/jql")

    def error_body(self, message: str) -> Any:
        return {"errorMessages": [message], "errors": {}}

    def _found(self, key: str) -> dict[str, Any]:
        if key not in self.issues:
            raise Refusal(404, "Issue does not exist or you do not have permission to see it.")
        return self.issues[key]

    def _myself(self, *, body: Any, query: dict[str, str]) -> Answer:
        return 200, {"accountId": "acct-api", "displayName": "Mailroom Bot", "active": True}

    def _user_search(self, *, body: Any, query: dict[str, str]) -> Answer:
        wanted = query.get("query", "").casefold()
        if not wanted:
            raise refuse("query is required")
        found = [u for u in self.users if u["email"].casefold().startswith(wanted)]
        return 200, [
            {"accountId": u["accountId"], "accountType": "atlassian", "displayName": u["displayName"], "active": True}
            | ({"emailAddress": u["email"]} if u["visible"] else {})
            for u in found
        ]

    def _search(self, *, body: Any, query: dict[str, str]) -> Answer:
        match = re.fullmatch(r'project = "([^"]+)" AND labels = "([^"]+)"', str(body.get("jql")))
        if not match or not isinstance(body.get("fields"), list) or not isinstance(body.get("maxResults"), int):
            raise refuse(f"not the JQL search asked for: {body!r}")
        project, label = match.groups()
        hits = [i for i in self.issues.values() if i["project"] == project and label in i["fields"]["labels"]]
        shown = [{"id": i["id"], "key": i["key"], "fields": {"summary": i["fields"]["summary"]}} for i in hits]
        return 200, {"issues": shown[: body["maxResults"]], "isLast": True}

    def _create(self, *, body: Any, query: dict[str, str]) -> Answer:
        fields = body.get("fields") if isinstance(body, dict) and set(body) <= {"fields", "update"} else None
        if not isinstance(fields, dict) or set(fields) - self.FIELDS:
            raise refuse(f"unexpected fields: {body!r}")
        if fields.get("project") != {"key": self.PROJECT}:
            raise refuse("project: valid project is required")
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip() or len(summary) > 255 or "\n" in summary:
            raise refuse("summary: one line of at most 255 characters is required")
        if fields.get("issuetype") != {"name": "Task"}:
            raise refuse("issuetype: valid issue type is required")
        problems = adf_problems(fields["description"]) if "description" in fields else []
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or any(not isinstance(x, str) or re.search(r"\s", x) for x in labels):
            problems.append("labels: labels are strings without spaces")
        if "priority" in fields and fields["priority"].get("name") not in self.PRIORITIES:
            problems.append("priority: no such priority")
        if "duedate" in fields:
            try:
                date.fromisoformat(fields["duedate"])
            except (TypeError, ValueError):
                problems.append("duedate: Error parsing date string")
        if "assignee" in fields and fields["assignee"].get("accountId") not in {u["accountId"] for u in self.users}:
            problems.append("assignee: User does not exist")
        if problems:
            raise refuse("; ".join(problems))
        number = next(self._ids)
        key = f"{self.PROJECT}-{number - 10000}"
        assignee = fields.get("assignee", {}).get("accountId")
        self.issues[key] = {"id": str(number), "key": key, "project": self.PROJECT, "fields": fields}
        self.issues[key].update(status="To Do", assignee=assignee, comments=[])
        return 201, {"id": str(number), "key": key, "self": f"{self.url}/rest/api/3/issue/{number}"}

    def _status(self, name: str) -> dict[str, Any]:
        return {"name": name, "statusCategory": {"key": self.CATEGORIES[name]}}

    def _issue(self, key: str, *, body: Any, query: dict[str, str]) -> Answer:
        issue = self._found(key)
        fields = {"summary": issue["fields"]["summary"], "status": self._status(issue["status"])}
        return 200, {"id": issue["id"], "key": key, "fields": fields}

    def _delete(self, key: str, *, body: Any, query: dict[str, str]) -> Answer:
        self._found(key)
        if not self.can_delete:
            raise Refusal(403, "You do not have permission to delete issues in this project.")
        del self.issues[key]
        return 204, None

    def _offered(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"id": self.TRANSITION_IDS[name], "name": name, "to": self._status(name)}
            for name in self.CATEGORIES
            if name != issue["status"] and name in self.reachable
        ]

    def _transitions(self, key: str, *, body: Any, query: dict[str, str]) -> Answer:
        return 200, {"transitions": self._offered(self._found(key))}

    def _transition(self, key: str, *, body: Any, query: dict[str, str]) -> Answer:
        issue = self._found(key)
        wanted = (body.get("transition") or {}).get("id") if isinstance(body, dict) else None
        [target] = [t for t in self._offered(issue) if t["id"] == wanted] or [None]
        if target is None:
            raise refuse(f"transition {wanted!r} is not valid for {key}")
        issue["status"] = target["name"]
        return 204, None

    def _assign(self, key: str, *, body: Any, query: dict[str, str]) -> Answer:
        issue = self._found(key)
        if not isinstance(body, dict) or "accountId" not in body:
            raise refuse("accountId is required (null to unassign)")
        if body["accountId"] is not None and body["accountId"] not in {u["accountId"] for u in self.users}:
            raise refuse("User does not exist")
        issue["assignee"] = body["accountId"]
        return 204, None

    def _comment(self, key: str, *, body: Any, query: dict[str, str]) -> Answer:
        issue = self._found(key)
        if not isinstance(body, dict) or (problems := adf_problems(body.get("body"))):
            raise refuse(f"body: {problems or 'required'}")
        issue["comments"].append(adf_text(body["body"]))
        return 201, {"id": str(len(issue["comments"])), "body": body["body"]}


# --- Asana ---------------------------------------------------------------------------------


class FakeAsana(TaskSystem):
    """Asana's REST API 1.0 for one workspace with one project; users are known by email."""

    BACKEND, LABEL, NOUN = "asana", "Asana task", "task"
    URL_SETTING, TOKEN_SETTING = "ASANA_BASE_URL", "ASANA_TOKEN"
    WORKSPACE = "1200000000000001"
    PROJECT = "1200000000000002"
    CREATE = {"name", "notes", "workspace", "projects", "due_at", "assignee", "external"}
    UPDATE = {"name", "notes", "due_at", "assignee", "completed"}

    def __init__(self, token: str) -> None:
        super().__init__(f"Bearer {token}")
        self.tasks: dict[str, dict[str, Any]] = {}
        self.users: dict[str, str] = {}  # email -> gid
        self._gids = (str(n) for n in itertools.count(1300000000000001))
        task = r"/tasks/((?:external:)?[^/]+)"
        self.route("GET", "/users/me", lambda **_: (200, {"data": {"gid": "1", "name": "Mailroom Bot"}}))
        self.route("POST", "/tasks", self._create)
        self.route("GET", task, lambda ref, **_: (200, {"data": self._found(ref)}))
        self.route("PUT", task, self._update)
        self.route("DELETE", task, self._delete)
        self.route("POST", task + "/stories", self._story)

    def add_user(self, email: str, name: str = "") -> str:
        self.users[email] = next(self._gids)  # Known by address alone: the name is Mailroom's to write.
        return self.users[email]

    def account(self, email: str) -> str:
        return self.users[email]

    def ids(self) -> list[str]:
        return list(self.tasks)

    def assignee(self, external_id: str) -> str | None:
        assignee = self.tasks[external_id]["assignee"]
        return assignee and assignee["gid"]

    def state(self, external_id: str) -> str:
        return "done" if self.tasks[external_id]["completed"] else "open"

    def comments(self, external_id: str) -> list[str]:
        return self.tasks[external_id]["stories"]

    def forget(self, external_id: str) -> None:
        del self.tasks[external_id]

    def lookup(self, marker: str) -> tuple[str, str]:
        return ("GET", f"/tasks/external:{marker}")

    def error_body(self, message: str) -> Any:
        return {"errors": [{"message": message, "help": "For more information on API status codes..."}]}

    def _data(self, body: Any, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) != {"data"} or not isinstance(body["data"], dict):
            raise refuse('the body must be {"data": {...}}')
        if unknown := set(body["data"]) - allowed:
            raise refuse(f"unexpected fields {sorted(unknown)}")
        return body["data"]

    def _assignee(self, data: dict[str, Any]) -> dict[str, str] | None:
        email = data.get("assignee")
        if email is None:
            return None
        if email not in self.users:
            raise Refusal(400, f"assignee: Not a recognized ID: {email}")
        return {"gid": self.users[email], "resource_type": "user"}

    def _found(self, ref: str) -> dict[str, Any]:
        ref = unquote(ref)
        if ref.startswith("external:"):
            ref = next((g for g, t in self.tasks.items() if t["external"]["gid"] == ref[9:]), "")
        if ref not in self.tasks:
            raise Refusal(404, f"task: Unknown object: {ref}")
        return self.tasks[ref]

    def _create(self, *, body: Any, query: dict[str, str]) -> Answer:
        data = self._data(body, self.CREATE)
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            raise refuse("name: a task needs a name")
        if data.get("workspace", self.WORKSPACE) != self.WORKSPACE or data.get("projects", [self.PROJECT]) != [
            self.PROJECT
        ]:
            raise refuse("workspace/projects: not a workspace or project of this account")
        if "workspace" not in data and "projects" not in data:
            raise refuse("workspace: You should specify one of workspace, parent, projects")
        if "due_at" in data and datetime.fromisoformat(data["due_at"]).utcoffset() is None:
            raise refuse("due_at: must be an ISO 8601 date-time with a time zone")
        external = data.get("external")
        if not isinstance(external, dict) or not isinstance(external.get("gid"), str):
            raise refuse("external: expected {gid}")
        if any(t["external"]["gid"] == external["gid"] for t in self.tasks.values()):
            raise refuse("external.gid: already used by another task")
        gid = next(self._gids)
        self.tasks[gid] = {
            "gid": gid,
            "name": data["name"],
            "notes": data.get("notes", ""),
            "due_at": data.get("due_at"),
            "completed": False,
            "assignee": self._assignee(data),
            "external": external,
            "permalink_url": f"https://app.asana.com/0/{self.PROJECT}/{gid}",
            "stories": [],
        }
        return 201, {"data": self.tasks[gid]}

    def _update(self, ref: str, *, body: Any, query: dict[str, str]) -> Answer:
        task, data = self._found(ref), self._data(body, self.UPDATE)
        if "completed" in data and not isinstance(data["completed"], bool):
            raise refuse("completed: must be a boolean")
        if "assignee" in data:
            task["assignee"] = self._assignee(data)
        task.update({k: v for k, v in data.items() if k != "assignee"})
        return 200, {"data": task}

    def _delete(self, ref: str, *, body: Any, query: dict[str, str]) -> Answer:
        del self.tasks[self._found(ref)["gid"]]
        return 200, {"data": {}}

    def _story(self, ref: str, *, body: Any, query: dict[str, str]) -> Answer:
        task, data = self._found(ref), self._data(body, {"text"})
        if not isinstance(data.get("text"), str) or not data["text"].strip():
            raise refuse("text: a comment needs text")
        task["stories"].append(data["text"])
        return 201, {"data": {"gid": next(self._gids), "type": "comment", "text": data["text"]}}
