"""A real Radicale CalDAV server on the loopback interface, for tests of calendars and reminders as a server keeps them.

Use the `radicale` fixture: one Radicale per test session (`radicale_server`,
`python -m radicale` with plain htpasswd logins and its storage in a
temporary directory), and for each test a fresh user with one calendar of
their own, so tests never see each other's events. On the account:

    radicale.settings(settings)         # point CALDAV_* at this account's calendar (pytest-django's `settings`)
    radicale.objects()                  # {href: icalendar.Calendar} of everything in the calendar, read back
    radicale.components("VEVENT")       # every VEVENT (or VTODO) in it
    radicale.make_calendar(name, slug)  # another calendar of this user; its URL
    radicale.calendar_url               # the "Work" calendar's URL, for settings that name it by URL

`only(items)` is the one item of a list.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass

import pytest
from defusedxml import ElementTree
from icalendar import Calendar

from tests.processes import LOOPBACK, ServerProcess, serving

PASSWORD = "caldav-test-password"
CALENDAR_NAME = "Work"

_MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>{name}</D:displayname>
    <C:supported-calendar-component-set>
      <C:comp name="VEVENT"/><C:comp name="VTODO"/>
    </C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""
_LIST = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"/></C:filter>
</C:calendar-query>"""


class RadicaleServer(ServerProcess):
    """One `python -m radicale` process, its config, password file and storage."""

    name = "Radicale"

    def __init__(self) -> None:
        super().__init__(prefix="mailroom-radicale-")
        self.users = self.root / "users"
        self.users.touch()
        self._users = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def command(self) -> list[str]:
        config = self.root / "config"
        config.write_text(self._config())
        return [sys.executable, "-m", "radicale", "--config", str(config)]

    def check_answers(self) -> None:
        # Listening is not answering: ask for something and wait for a reply (any HTTP status is one).
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(self.url, timeout=2).close()  # noqa: S310 - loopback http

    def add_user(self, password: str = PASSWORD) -> str:
        """A new user, who may log in at once (Radicale reads the file again when it changes)."""
        user = f"user{next(self._users)}"
        with self.users.open("a") as users:
            users.write(f"{user}:{password}\n")
        return user

    def _config(self) -> str:
        return f"""# Throwaway Radicale for Mailroom's tests: plain passwords, each user sees only their own calendars.
[server]
hosts = {LOOPBACK}:{self.port}
[auth]
type = htpasswd
htpasswd_filename = {self.users}
htpasswd_encryption = plain
# A wrong password is answered at once, not after the default one-second delay.
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = {self.root / "collections"}
[web]
type = none
[logging]
level = warning
"""


@dataclass
class RadicaleAccount:
    """One test's user and calendar on the session's Radicale: what tests look at."""

    server: RadicaleServer
    user: str
    password: str = PASSWORD

    @property
    def calendar_url(self) -> str:
        return f"{self.server.url}{self.user}/work/"

    def request(self, method: str, url: str, body: str = "", headers: dict[str, str] | None = None) -> bytes:
        """One authenticated request as this user; the response body (HTTPError for a 4xx or 5xx)."""
        token = b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - loopback http
            url,
            data=body.encode() or None,
            method=method,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/xml", **(headers or {})},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.read()

    def make_calendar(self, name: str = CALENDAR_NAME, slug: str = "work") -> str:
        url = f"{self.server.url}{self.user}/{slug}/"
        self.request("MKCALENDAR", url, _MKCALENDAR.format(name=name))
        return url

    def objects(self, calendar_url: str | None = None) -> dict[str, Calendar]:
        """Every object in the calendar, as the server keeps it: {href: parsed iCalendar}."""
        reply = self.request("REPORT", calendar_url or self.calendar_url, _LIST, {"Depth": "1"})
        found = {}
        for response in ElementTree.fromstring(reply).iter("{DAV:}response"):
            data = response.find(".//{urn:ietf:params:xml:ns:caldav}calendar-data")
            if data is not None and data.text:
                found[response.findtext("{DAV:}href")] = Calendar.from_ical(data.text)
        return found

    def components(self, kind: str, calendar_url: str | None = None) -> list:
        """Every VEVENT (or VTODO...) in the calendar."""
        return [item for calendar in self.objects(calendar_url).values() for item in calendar.walk(kind)]

    def settings(self, settings, *, calendar: str = CALENDAR_NAME) -> None:
        """Point Mailroom's CALDAV_* settings (pytest-django's `settings`) at this account, both backends on."""
        settings.CALDAV_URL = self.server.url
        settings.CALDAV_USERNAME = self.user
        settings.CALDAV_PASSWORD = self.password
        settings.CALDAV_CALENDAR = calendar
        settings.CALDAV_TODO_LIST = ""
        settings.CALDAV_TIMEOUT_SECONDS = 10
        settings.CALENDAR_BACKEND = "caldav"
        settings.REMINDER_BACKEND = "caldav"


def only(items: list):
    """The one item of a list (the one event in a calendar, the one alarm of a reminder); fails if not one."""
    assert len(items) == 1, f"{len(items)} where one was expected: {items!r}"[:500]
    return items[0]


@pytest.fixture(scope="session")
def radicale_server():
    """The session's Radicale, started on first use."""
    yield from serving(RadicaleServer())


@pytest.fixture
def radicale(radicale_server) -> RadicaleAccount:
    """A fresh user on the session's Radicale, with one empty calendar named "Work"."""
    account = RadicaleAccount(radicale_server, radicale_server.add_user())
    account.make_calendar()
    return account
