"""./scripts/start for real: one command, and Mailroom runs with demo data, says where to look, and stops on Ctrl-C.

The test follows the printed summary as a first-time user would: the
approval link, signed in as the printed approver, decides an action; the
dashboard shows figures; new demo mail keeps arriving; then SIGINT stops the
script and every process it started.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from actions.demo_summary import RULE
from tests.processes import LOOPBACK, free_port, wait_for

pytestmark = [
    pytest.mark.slow,
    # The script runs the same way whatever database the suite uses (see PASSED_ON), so one phase of CI
    # proves it; the PostgreSQL phase would run exactly the same thing again.
    pytest.mark.skipif(
        bool(os.environ.get("DATABASE_URL")), reason="the demo runs on its embedded default: the SQLite run covers it"
    ),
]

START = Path(settings.BASE_DIR) / "scripts" / "start"
# Only what a shell needs: the demo runs on its embedded default (SQLite in its
# own data folder, the ORM broker, local rules, the outbox) whatever the suite
# runs on. CI's second phase sets DATABASE_URL and REDIS_URL for the suite; the
# demo must neither use nor disturb that database and broker.
PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


@dataclass
class Page:
    status: int
    url: str
    text: str


class Browser:
    """A browser's part that matters here: cookies, redirects, and the CSRF token Django's forms need."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, url: str) -> Page:
        return self._open(urllib.request.Request(url))  # noqa: S310 - the loopback address the script printed

    def post(self, url: str, fields: dict[str, str]) -> Page:
        fields = {"csrfmiddlewaretoken": self.csrf_token(), **fields}
        body = urllib.parse.urlencode(fields).encode()
        return self._open(urllib.request.Request(url, data=body, headers={"Referer": url}))  # noqa: S310 - loopback

    def csrf_token(self) -> str:
        return next(cookie.value for cookie in self.cookies if cookie.name == "csrftoken")

    def json(self, url: str) -> dict:
        page = self.get(url)
        assert page.status == 200, (url, page.status, page.text[:500])
        return json.loads(page.text)

    def sign_in(self, login_page: str, username: str, password: str) -> Page:
        """Open a login page (it may be where a link sent us) and submit it; the page it leads to."""
        page = self.get(login_page)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
        return self.post(page.url, {"username": username, "password": password, "next": query["next"][0]})

    def _open(self, request: urllib.request.Request) -> Page:
        try:
            with self.opener.open(request, timeout=30) as response:
                return Page(response.status, response.url, response.read().decode())
        except urllib.error.HTTPError as error:
            return Page(error.code, error.url, error.read().decode())


class Script:
    """./scripts/start as a child process in a session of its own, with its output read line by line."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
        env |= {
            "VENV": os.environ.get("VIRTUAL_ENV") or sys.prefix,  # this suite's environment: nothing to install
            "PORT": str(port),
            "MAILROOM_DATA_DIR": str(data_dir),
            "DEMO_MAIL": "6",  # a few messages analysed before start-up, then one a second
            "DEMO_EVERY": "1",
        }
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(START)],
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so that everything it starts can be found by its session
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def summary(self) -> str:
        """The block between the two rules, once printed."""
        assert wait_for(lambda: self.lines.count(RULE) >= 2 or self.process.poll() is not None, timeout=180), (
            self.output
        )
        assert self.lines.count(RULE) >= 2, self.output
        first = self.lines.index(RULE)
        return "\n".join(self.lines[first + 1 : self.lines.index(RULE, first + 1)])

    def processes(self) -> dict[int, str]:
        """Every live process of the script's session (what it started, and theirs), with its command line."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[3]) == self.process.pid and fields[0] != "Z":
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        return found

    def kill_all(self) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def field(summary: str, label: str) -> str:
    return re.search(rf"^\s+{label}\s+(\S+)$", summary, re.MULTILINE).group(1)


def email_count(admin: Browser, site: str) -> int:
    return admin.json(f"{site}/api/v1/emails/?page_size=1")["count"]


def newest_emails(admin: Browser, site: str) -> list[dict]:
    return admin.json(f"{site}/api/v1/emails/?ordering=-id&page_size=20")["results"]


def dashboard_figures(page: Page) -> dict[str, int]:
    """The action counts by status as the dashboard's HTML shows them."""
    found = re.findall(r'data-path="actions\.by_status\.(\w+)\.count" data-format="count">(\d+)<', page.text)
    return {status: int(count) for status, count in found}


@pytest.fixture
def script(tmp_path):
    started = Script(tmp_path / "data", free_port())
    yield started
    started.kill_all()  # Only after a failure is anything left.
    with contextlib.suppress(subprocess.TimeoutExpired):
        started.process.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the script's processes through /proc")
def test_one_command_runs_the_demo_and_ctrl_c_stops_all_of_it(script):
    summary = script.summary()
    site = re.search(r"running with demo data at (\S+?)/?$", summary, re.MULTILINE).group(1)
    (admin_user, admin_password), (approver, approver_password) = re.findall(r"user (\S+), password (\S+)", summary)
    link = field(summary, "Approval link")
    assert admin_user == "admin" and link.startswith(f"{site}/approvals/")

    health = Browser().get(f"{site}/healthz")
    assert (health.status, json.loads(health.text)) == (200, {"status": "ok"})

    admin = Browser()
    assert admin.sign_in(f"{site}/admin/login/?next=/admin/", admin_user, admin_password).url == f"{site}/admin/"
    # The approval request is in the outbox, and the link printed is the one it carries.
    outbox_message = re.search(r"an approval request to .+?: (\S+)$", summary, re.MULTILINE).group(1)
    assert link in admin.get(outbox_message).text

    # The approver follows the link: signing in leads to the confirmation page; approving queues the action.
    approver_browser = Browser()
    confirmation = approver_browser.sign_in(link, approver, approver_password)
    assert confirmation.status == 200 and confirmation.url == f"{site}/approvals/decide/", confirmation.text[:2000]
    action_id = re.search(r"Approve or reject #(\d+)", confirmation.text).group(1)
    approval_id = re.search(r'name="approval" value="(\d+)"', confirmation.text).group(1)
    outcome = approver_browser.post(confirmation.url, {"approval": approval_id, "decision": "approve"})
    assert outcome.status == 200 and "Your decision is recorded." in outcome.text
    action = admin.json(f"{site}/api/v1/actions/{action_id}/")
    assert action["status"] in {"queued", "running", "succeeded"}, action

    # The dashboard fills up: actions waiting for approval at once, executed ones as the workers get to them.
    figures = dashboard_figures(admin.get(f"{site}/admin/dashboard/"))
    assert figures["pending_approval"] > 0 and sum(figures.values()) > 0, figures
    assert wait_for(lambda: dashboard_figures(admin.get(f"{site}/admin/dashboard/"))["succeeded"] > 0, every=1)

    # New demo mail keeps arriving, and the workers analyse and route it as they would real mail.
    before = email_count(admin, site)
    assert wait_for(lambda: email_count(admin, site) > before, every=0.5)
    newest = newest_emails(admin, site)[0]["id"]
    assert wait_for(
        lambda: any(e["id"] > newest and e["status"] != "received" for e in newest_emails(admin, site)), every=0.5
    )

    started = script.processes()
    commands = " ".join(started.values())
    assert all(name in commands for name in ("runserver", "qcluster", "demo_stream")), commands
    script.process.send_signal(signal.SIGINT)
    assert script.process.wait(timeout=60) == 0, script.output
    script.reader.join(timeout=10)
    assert script.lines[-1] == "Stopped", script.output
    # The script waited for its children; a grandchild (the web server's reloader) may take a moment more.
    assert wait_for(lambda: not script.processes(), timeout=15), script.processes()
    logs = sorted((script.data_dir / "logs").glob("*.log"))
    assert [log.name for log in logs] == ["demo-mail.log", "urgent-worker.log", "web.log", "worker.log"]
    assert not [log.name for log in logs if "Traceback" in log.read_text()], "a process logged an error"
    assert "Traceback" not in script.output


def test_a_port_already_taken_stops_it_before_anything_starts(tmp_path):
    # Whatever answers on a taken port would pass for Mailroom; the script says so instead, and starts nothing.
    with socket.create_server((LOOPBACK, 0)) as taken:
        port = taken.getsockname()[1]
        script = Script(tmp_path / "data", port)
        assert script.process.wait(timeout=120) == 1
    script.reader.join(timeout=10)
    assert f"Cannot listen on {LOOPBACK}:{port}" in script.output
    assert not (tmp_path / "data").exists()
