"""Events and reminders on a CalDAV server (the caldav library): iCloud, Fastmail, Nextcloud, Radicale...

Each object lives at a URL made from its UID in the chosen calendar, so
saving again replaces it and a retried action never makes a second one.
The caldav library finds the account's calendars and speaks HTTP; objects
are written with plain PUT and DELETE under ETag preconditions, because
its own save() searches by UID and bumps SEQUENCE on every write, where
ours rises only when the event changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from urllib.parse import quote, urlsplit

import caldav
from caldav.lib import error
from caldav.lib.http_sync import requests
from caldav.lib.url import URL
from django.conf import settings
from icalendar import Calendar

from integrations.base import Health
from integrations.calendar import ical
from integrations.calendar.base import CalendarBackend, ReminderBackend
from integrations.calendar.ical import Meeting, Reminder
from integrations.errors import IntegrationError, Unavailable

# What makes two versions of an event or reminder different for the people who see it.
SIGNIFICANT = ("DTSTART", "DTEND", "DUE", "SUMMARY", "LOCATION", "DESCRIPTION", "ORGANIZER", "ATTENDEE", "STATUS")
ICS = {"Content-Type": "text/calendar; charset=utf-8"}


class CalDavCollection:
    """One calendar (or reminders list) of the CalDAV account, and the objects in it by UID."""

    def __init__(self, wanted: str, setting: str) -> None:
        if not settings.CALDAV_URL:
            raise Unavailable("CALDAV_URL is not set: name the CalDAV server (e.g. https://caldav.icloud.com/).")
        # A display name, a URL, or empty for the account's first calendar; `setting` says where it came from.
        self.wanted = wanted
        self.setting = setting
        self.host = urlsplit(settings.CALDAV_URL).hostname or "the CalDAV server"
        self._url: URL | None = None

    def save(self, uid: str, kind: str, version: Callable[[int], bytes], sequence: int) -> str:
        """Create or replace the object with this UID; `version(n)` is its iCalendar with SEQUENCE n. Its URL."""
        with self._client("save", kind) as client:
            url = self._object_url(client, uid)
            response = client.request(str(url), "GET")
            if response.status == 404:
                body, precondition = version(sequence), {"If-None-Match": "*"}
            else:
                self._check(response, "read", kind)
                kept = _component(response.raw.encode(), kind)
                current = int(kept.get("SEQUENCE", 0)) if kept is not None else -1
                if kept is not None and _significant(kept) == _significant(_component(version(current), kind)):
                    return str(url)  # Saved before (a retry): leave it as it is.
                # Changed: a higher SEQUENCE tells the clients holding it that this version replaces theirs.
                body = version(max(sequence, current + 1))
                etag = response.headers.get("ETag")
                precondition = {"If-Match": etag} if etag else {}
            response = client.put(str(url), body.decode(), {**ICS, **precondition})
            self._check(response, "save", kind)
            return str(url)

    def delete(self, uid: str, kind: str) -> bool:
        """Delete the object with this UID; False when there was none."""
        with self._client("delete", kind) as client:
            response = client.delete(str(self._object_url(client, uid)))
            if response.status in (404, 410):
                return False
            self._check(response, "delete", kind)
            return True

    def health(self, backend: CalendarBackend | ReminderBackend) -> Health:
        """Log in and find the calendar: one PROPFIND at a calendar named by URL, else the account's calendar list."""
        try:
            with self._client("find", "calendar") as client:
                if self._by_url:
                    response = client.propfind(str(self._collection_url(client)), props=["{DAV:}displayname"])
                    self._check(response, "find", "calendar")
                else:
                    # Finding the principal and listing its calendars is the check (three PROPFINDs).
                    self._url = None
                    self._collection_url(client)
        except IntegrationError as exc:
            return backend.unhealthy(str(exc))
        except Exception as exc:  # A health check never raises: an odd answer is "unhealthy".
            return backend.unhealthy(f"{self.host} gave an answer the caldav library cannot read: {type(exc).__name__}")
        which = "a URL" if self._by_url else repr(self.wanted) if self.wanted else "empty, the first one"
        return backend.healthy(f"{self.host} answers and has the calendar ({self.setting}: {which}).")

    @contextmanager
    def _client(self, doing: str, kind: str) -> Iterator[caldav.DAVClient]:
        """A logged-in client for one operation; every failure on the way comes out as IntegrationError."""
        try:
            with caldav.DAVClient(
                url=settings.CALDAV_URL,
                username=settings.CALDAV_USERNAME or None,
                password=settings.CALDAV_PASSWORD or None,
                timeout=settings.CALDAV_TIMEOUT_SECONDS,
                # The URL is configured: no DNS lookups to discover it.
                enable_rfc6764=False,
            ) as client:
                yield client
        except IntegrationError:
            raise
        except error.AuthorizationError as exc:
            raise IntegrationError(
                f"{self.host} refused to let us {doing} the {kind} (HTTP {exc.status or 401}): "
                "check CALDAV_USERNAME and CALDAV_PASSWORD.",
                permanent=True,
            ) from None
        except error.RateLimitError as exc:
            raise IntegrationError(
                f"{self.host} asks us to wait (HTTP {exc.status or 429}) before we {doing} the {kind}.",
                retry_after=exc.retry_after_seconds,
            ) from None
        except error.DAVError as exc:
            raise self._status_error(exc.status, doing, kind) from None
        except (requests.exceptions.RequestException, OSError) as exc:
            # The library's message names the URL; the kind of failure is enough.
            reason = type(exc).__name__
            raise IntegrationError(f"Could not reach {self.host} to {doing} the {kind}: {reason}.") from None

    def _collection_url(self, client: caldav.DAVClient) -> URL:
        if self._url is not None:
            return self._url
        if self._by_url:
            self._url = client.url.join(self.wanted)
            return self._url
        calendars = client.get_calendars(client.principal())
        if not calendars:
            raise IntegrationError(f"The CalDAV account on {self.host} has no calendar.", permanent=True)
        if not self.wanted:
            self._url = calendars[0].url
            return self._url
        names = [calendar.get_display_name() for calendar in calendars]
        if self.wanted not in names:
            raise IntegrationError(
                f"{self.setting} names the calendar {self.wanted!r}, which the CalDAV account on {self.host} "
                f"does not have; it has {', '.join(repr(name) for name in names if name)}.",
                permanent=True,
            )
        self._url = calendars[names.index(self.wanted)].url
        return self._url

    @property
    def _by_url(self) -> bool:
        return self.wanted.startswith(("http://", "https://", "/"))

    def _object_url(self, client: caldav.DAVClient, uid: str) -> URL:
        return self._collection_url(client).join(quote(uid, safe="") + ".ics")

    def _check(self, response, doing: str, kind: str) -> None:
        if 200 <= response.status < 300:
            return
        if response.status == 412:
            # Someone changed it between our read and our write (or created it first): reading again settles it.
            raise IntegrationError(f"The {kind} changed on {self.host} while we saved it; trying again.")
        raise self._status_error(response.status, doing, kind)

    def _status_error(self, status: int | None, doing: str, kind: str) -> IntegrationError:
        """An HTTP failure: 5xx, 408, 429 or no status at all is worth another try, other 4xx are not."""
        transient = status is None or status >= 500 or status in (408, 429)
        hints = {
            403: f" ({self.setting}: does this calendar take {kind}?)",
            404: f" ({self.setting}: is the calendar there?)",
            409: f" ({self.setting}: is the calendar there?)",
            415: f" ({self.setting}: does this calendar take {kind}?)",
        }
        hint = hints.get(status, "")
        return IntegrationError(
            f"{self.host} answered HTTP {status or '(none)'} when we tried to {doing} the {kind}{hint}.",
            permanent=not transient,
        )


def _component(data: bytes, kind: str):
    """The first `kind` (VEVENT, VTODO) in an iCalendar object, or None."""
    try:
        found = Calendar.from_ical(data).walk(kind)
    except ValueError:
        return None  # Not iCalendar we can read: replace it.
    return found[0] if found else None


def _significant(component) -> list:
    values = []
    for name in SIGNIFICANT:
        found = component.get(name, [])
        for value in found if isinstance(found, list) else [found]:
            values.append((name, value.to_ical(), sorted(value.params.items())))
    return values


class CalDavCalendar(CalendarBackend):
    """Meetings as events in a CalDAV calendar (CALDAV_CALENDAR), besides the invitation by email."""

    name = "caldav"

    def __init__(self) -> None:
        self.collection = CalDavCollection(settings.CALDAV_CALENDAR, "CALDAV_CALENDAR")

    def save_event(self, meeting: Meeting) -> str:
        return self.collection.save(
            meeting.uid,
            "VEVENT",
            lambda sequence: ical.stored_event(replace(meeting, sequence=sequence)),
            meeting.sequence,
        )

    def delete_event(self, uid: str) -> bool:
        return self.collection.delete(uid, "VEVENT")

    def health(self) -> Health:
        return self.collection.health(self)


class CalDavReminders(ReminderBackend):
    """Reminders as VTODO in a CalDAV list (CALDAV_TODO_LIST, else CALDAV_CALENDAR): Apple Reminders shows them."""

    name = "caldav"

    def __init__(self) -> None:
        setting = "CALDAV_TODO_LIST" if settings.CALDAV_TODO_LIST else "CALDAV_CALENDAR"
        self.collection = CalDavCollection(getattr(settings, setting), setting)

    def save_reminder(self, reminder: Reminder) -> str:
        return self.collection.save(
            reminder.uid,
            "VTODO",
            lambda sequence: ical.stored_todo(replace(reminder, sequence=sequence)),
            reminder.sequence,
        )

    def delete_reminder(self, uid: str) -> bool:
        return self.collection.delete(uid, "VTODO")

    def health(self) -> Health:
        return self.collection.health(self)
