"""Reading dates and times the way people write them in mail: "Thursday at 15:00 CET", "by Friday", "26 Nov 2026".

Everything is read relative to when the email arrived, never to the clock of
the machine analysing it, so the same email always reads the same way. Only
what can be read without doubt is returned: a date without a time is no
meeting time, and a time that does not exist (the clocks change) is none.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

# People use abbreviations loosely ("CET" in July still means Berlin time), so each
# names the civil time of its region rather than a fixed offset.
ZONE_ABBREVIATIONS = {
    "UTC": "UTC",
    "GMT": "Europe/London",
    "BST": "Europe/London",
    "WET": "Europe/Lisbon",
    "WEST": "Europe/Lisbon",
    "CET": "Europe/Berlin",
    "CEST": "Europe/Berlin",
    "EET": "Europe/Helsinki",
    "EEST": "Europe/Helsinki",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "JST": "Asia/Tokyo",
    "AEST": "Australia/Sydney",
    "AEDT": "Australia/Sydney",
}
# A deadline without a time of day ends when a working day does.
END_OF_DAY = time(17, 0)
# How far apart a date and its time may be written ("Thursday, if that suits you, at 15:00").
PAIR_WINDOW = 40

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>20\d\d))?"

_ISO_DATE = re.compile(r"\b(?P<year>20\d\d)-(?P<month>[01]\d)-(?P<day>[0-3]\d)(?!\d)")
_DAY_MONTH = re.compile(rf"\b{_DAY}\s+(?:of\s+)?(?P<month>{_MONTH})\b\.?{_YEAR}", re.IGNORECASE)
_MONTH_DAY = re.compile(rf"\b(?P<month>{_MONTH})\.?\s+{_DAY}\b{_YEAR}", re.IGNORECASE)
_WEEKDAY = re.compile(rf"\b(?P<weekday>{'|'.join(_WEEKDAYS)})\b", re.IGNORECASE)
_RELATIVE_DAY = re.compile(r"\b(?P<relative>today|tonight|tomorrow)\b", re.IGNORECASE)

_MERIDIEM = r"\s*(?P<meridiem>[ap]\.?m\.?)"
_CLOCK = re.compile(
    rf"(?<![\d:.])(?P<hour>[01]?\d|2[0-3])[:h](?P<minute>[0-5]\d)(?:{_MERIDIEM})?(?![\d:])", re.IGNORECASE
)
_HOUR_ONLY = re.compile(rf"(?<![\d:.])(?P<hour>1[0-2]|0?[1-9]){_MERIDIEM}(?![a-z])", re.IGNORECASE)
_ZONE_NAME = re.compile(r"\b(?P<zone>[A-Z][A-Za-z]+/[A-Z][A-Za-z_]+(?:/[A-Z][A-Za-z_]+)?)\b")
_ZONE_ABBREVIATION = re.compile(rf"\b(?P<zone>{'|'.join(ZONE_ABBREVIATIONS)})\b")

_DEADLINE = re.compile(
    r"\b(?:by|before|until|till|due(?:\s+(?:on|by))?|no\s+later\s+than|deadline(?:\s+is)?:?)\s+"
    r"(?:(?:the\s+)?end\s+of\s+(?:the\s+)?)?(?:this\s+|next\s+|on\s+)?",
    re.IGNORECASE,
)
_END_OF_DAY = re.compile(r"\b(?:by|before)\s+(?:the\s+)?(?:end\s+of\s+(?:the\s+)?day|eod|cob|tonight)\b", re.IGNORECASE)
_END_OF_WEEK = re.compile(r"\b(?:by|before)\s+(?:the\s+)?end\s+of\s+(?:the|this)\s+week\b", re.IGNORECASE)

_DURATION_HOURS = re.compile(r"\bfor\s+(?P<count>an|one|1|two|2|three|3)\s+hours?\b", re.IGNORECASE)
_DURATION_HALF_HOUR = re.compile(r"\bfor\s+half\s+an\s+hour\b", re.IGNORECASE)
_DURATION_MINUTES = re.compile(r"\b(?P<count>\d{2,3})[\s-]*min(?:ute)?s?\b", re.IGNORECASE)
_COUNTS = {"an": 1, "one": 1, "1": 1, "two": 2, "2": 2, "three": 3, "3": 3}


@dataclass(frozen=True)
class LocalTime:
    """A wall-clock time in a named zone, as a meeting invitation states it."""

    start: datetime  # naive: the time as read in `zone`
    zone: str  # an IANA name

    def aware(self) -> datetime:
        """The moment itself, for comparing with other moments."""
        return self.start.replace(tzinfo=zoneinfo.ZoneInfo(self.zone))


@dataclass(frozen=True)
class _MonthDay:
    """A day of a month, with its year or (0) without."""

    year: int
    month: int
    day: int


@dataclass(frozen=True)
class _Offset:
    """Today (0) or tomorrow (1), counted from the day the email arrived."""

    days: int


@dataclass(frozen=True)
class _Found:
    """A date or time found in the text, and where."""

    start: int
    end: int
    value: date | time | _MonthDay | _Offset | None = None
    weekday: int | None = None  # for a weekday, resolved against the day the email arrived


def received_moment(value: str) -> datetime:
    """EmailFacts.received_at as an aware datetime (UTC when it has no offset, now when it is unreadable)."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def zone_or_utc(name: str) -> str:
    """`name` when it is a known IANA zone, else "UTC"."""
    return name if name in _zone_names() else "UTC"


def find_meeting_time(text: str, received_at: datetime, default_zone: str) -> LocalTime | None:
    """The first date written together with a time of day, in the zone the text names or `default_zone`.

    Weekdays ("Thursday at 15:00") mean the next such day after the day the
    email arrived. None when no date and time stand together, or the time
    does not exist in the zone.
    """
    zone = _zone_in(text) or zone_or_utc(default_zone)
    today = received_at.astimezone(zoneinfo.ZoneInfo(zone)).date()
    times = _times(text)
    for found in _dates(text):
        clock = _time_near(found, times)
        if clock is None:
            continue
        day = _resolve(found, today, today_counts=False)
        if day is None:
            continue
        zone = _zone_after(text, clock.end) or zone
        start = datetime.combine(day, clock.value)
        return LocalTime(start, zone) if _exists(start, zone) else None
    return None


def find_deadline(text: str, received_at: datetime, default_zone: str) -> datetime | None:
    """When the text asks for something to be done by ("by Friday", "before 30 November"), or None.

    A day without a time means the end of that working day (END_OF_DAY). Unlike a meeting, a weekday
    may be the day the email arrived: "by Friday", written on a Friday, means that evening.
    """
    zone = _zone_in(text) or zone_or_utc(default_zone)
    tz = zoneinfo.ZoneInfo(zone)
    today = received_at.astimezone(tz).date()
    if _END_OF_DAY.search(text):
        return datetime.combine(today, END_OF_DAY, tz)
    if _END_OF_WEEK.search(text):
        return datetime.combine(next_weekday(today, 4, today_counts=True), END_OF_DAY, tz)
    dates = _dates(text)
    times = _times(text)
    for lead in _DEADLINE.finditer(text):
        found = next((item for item in dates if item.start == lead.end()), None)
        if found is None or (day := _resolve(found, today, today_counts=True)) is None:
            continue
        clock = _time_near(found, times, before=False)
        return datetime.combine(day, clock.value if clock else END_OF_DAY, tz)
    return None


def find_duration_minutes(text: str) -> int | None:
    """How long a meeting should last, when the text says ("for an hour", "30 minutes"), else None."""
    if _DURATION_HALF_HOUR.search(text):
        return 30
    if hours := _DURATION_HOURS.search(text):
        return 60 * _COUNTS[hours["count"].lower()]
    if minutes := _DURATION_MINUTES.search(text):
        count = int(minutes["count"])
        return count if 5 <= count <= 480 else None
    return None


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone_in(text: str) -> str | None:
    """The first time zone the text names: an IANA name or a known abbreviation."""
    for match in _ZONE_NAME.finditer(text):
        if match["zone"] in _zone_names():
            return match["zone"]
    if match := _ZONE_ABBREVIATION.search(text):
        return ZONE_ABBREVIATIONS[match["zone"]]
    return None


def _zone_after(text: str, position: int) -> str | None:
    """The zone written right after a time ("15:00 CET", "3pm (Europe/Paris)")."""
    following = text[position : position + 40].lstrip(" (")
    for pattern in (_ZONE_ABBREVIATION, _ZONE_NAME):
        match = pattern.match(following)
        if match and (zone := ZONE_ABBREVIATIONS.get(match["zone"], match["zone"])) in _zone_names():
            return zone
    return None


def _dates(text: str) -> list[_Found]:
    found: list[_Found] = []
    for match in _ISO_DATE.finditer(text):
        if day := _date(int(match["year"]), int(match["month"]), int(match["day"])):
            found.append(_Found(match.start(), match.end(), day))
    for pattern in (_DAY_MONTH, _MONTH_DAY):
        for match in pattern.finditer(text):
            day = _MonthDay(int(match["year"] or 0), _MONTHS[match["month"].lower()], int(match["day"]))
            # Without a year, _resolve picks it; 2000 is a leap year, so 29 February is kept until then.
            if _date(day.year or 2000, day.month, day.day):
                found.append(_Found(match.start(), match.end(), day))
    for match in _WEEKDAY.finditer(text):
        found.append(_Found(match.start(), match.end(), weekday=_WEEKDAYS.index(match["weekday"].lower())))
    for match in _RELATIVE_DAY.finditer(text):
        offset = 1 if match["relative"].lower() == "tomorrow" else 0
        found.append(_Found(match.start(), match.end(), _Offset(offset)))
    return sorted(_outermost(found), key=lambda item: item.start)


def _outermost(found: list[_Found]) -> list[_Found]:
    # "Thursday 26 November" is one date: keep the longer of overlapping matches.
    kept: list[_Found] = []
    for item in sorted(found, key=lambda item: (item.start, -(item.end - item.start))):
        if kept and item.start < kept[-1].end:
            continue
        kept.append(item)
    return kept


def _times(text: str) -> list[_Found]:
    found = []
    for pattern in (_CLOCK, _HOUR_ONLY):
        for match in pattern.finditer(text):
            hour, minute = int(match["hour"]), int(match.groupdict().get("minute") or 0)
            meridiem = (match["meridiem"] or "").lower().replace(".", "")
            if meridiem:
                if hour > 12:
                    continue
                hour = hour % 12 + (12 if meridiem == "pm" else 0)
            found.append(_Found(match.start(), match.end(), time(hour, minute)))
    return sorted(_outermost(found), key=lambda item: item.start)


def _time_near(found: _Found, times: list[_Found], *, before: bool = True) -> _Found | None:
    """The time written closest after the date (or, failing that, just before it), within PAIR_WINDOW."""
    after = [item for item in times if 0 <= item.start - found.end <= PAIR_WINDOW]
    if after:
        return after[0]
    if before:
        ahead = [item for item in times if 0 <= found.start - item.end <= PAIR_WINDOW]
        if ahead:
            return ahead[-1]
    return None


def _resolve(found: _Found, today: date, *, today_counts: bool) -> date | None:
    """The calendar day a found date means, read from the day the email arrived."""
    value = found.value
    if found.weekday is not None:
        return next_weekday(today, found.weekday, today_counts=today_counts)
    if isinstance(value, _Offset):
        return today + timedelta(days=value.days)
    if isinstance(value, _MonthDay):
        if value.year:
            return _date(value.year, value.month, value.day)
        # No year: the next time that day comes, this year or the next.
        for year in (today.year, today.year + 1):
            day = _date(year, value.month, value.day)
            if day is not None and day >= today:
                return day
        return None
    return value if isinstance(value, date) else None


def next_weekday(day: date, weekday: int, *, today_counts: bool = False) -> date:
    """The next given weekday (0 Monday) after `day`, or `day` itself when it is one and today counts."""
    ahead = (weekday - day.weekday()) % 7
    if ahead == 0 and not today_counts:
        ahead = 7
    return day + timedelta(days=ahead)


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _exists(start: datetime, zone: str) -> bool:
    """Whether the wall-clock time happens in the zone (it does not when the clocks go forward over it)."""
    local = start.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == start
