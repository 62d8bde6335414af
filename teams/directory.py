"""Reading and writing the team directory in its JSON format (see README, "Team directory")."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from teams.models import WEEKDAYS, WORKING_WEEK, Availability, Role, TeamMember, validate_skills


class DirectoryError(ValueError):
    """The directory file was refused; `errors` has one line per bad entry and field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class _Entry:
    name: str
    email: str
    role: str
    manager: str | None
    skills: dict[str, int]
    timezone: str
    work_start: time
    work_end: time
    availability: str
    away_until: date | None
    capacity: int
    active: bool
    work_days: list[int]


def _parse_hours(value: Any) -> tuple[time, time]:
    try:
        start, end = str(value).split("-")
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError(f"working_hours {value!r} is not HH:MM-HH:MM") from None


def parse_work_days(value: Any) -> list[int]:
    """Read "Mon-Fri", "Mon,Wed,Fri", "Sun-Thu" or a list of day names into weekday numbers."""
    parts = value if isinstance(value, list) else str(value).split(",")
    days: set[int] = set()
    for part in parts:
        first, _, last = str(part).strip().partition("-")
        try:
            start = WEEKDAYS.index(first.strip().title()[:3])
            end = WEEKDAYS.index(last.strip().title()[:3]) if last else start
        except ValueError:
            raise ValueError(f"{value!r} is not a list of weekdays such as Mon-Fri") from None
        days.update((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    return sorted(days)


def format_work_days(days: list[int]) -> str:
    """The inverse of parse_work_days, as compact as it can be ("Mon-Fri")."""
    days = sorted(days)
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(WEEKDAYS[run[0]] if len(run) == 1 else f"{WEEKDAYS[run[0]]}-{WEEKDAYS[run[-1]]}" for run in runs)


def _parse_entry(raw: Any) -> tuple[_Entry | None, list[str]]:
    if not isinstance(raw, dict):
        return None, ["is not an object"]
    errors = []

    def field(name: str, parse, default: Any = ...) -> Any:
        if name not in raw or raw[name] is None:
            if default is ...:
                errors.append(f"{name} is missing")
            return None if default is ... else default
        try:
            return parse(raw[name])
        except (ValueError, TypeError, ValidationError) as exc:
            message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
            errors.append(f"{name}: {message}")
            return None

    def choice(options):
        def parse(value):
            if value not in options:
                raise ValueError(f"{value!r} is not one of {', '.join(options)}")
            return value

        return parse

    def timezone_name(value):
        if value not in zoneinfo.available_timezones():
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value

    def capacity(value):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{value!r} is not a whole number of 0 or more")
        return value

    def boolean(value):
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false")
        return value

    def email(value):
        validate_email(value)
        return value.lower()

    def skills(value):
        validate_skills(value)
        return value

    name = field("name", lambda v: str(v).strip() or _raise("is empty"))
    address = field("email", email)
    role = field("role", choice(Role.values))
    manager = field("manager", email, default=None)
    skill_levels = field("skills", skills, default={})
    tz = field("timezone", timezone_name, default="UTC")
    hours = field("working_hours", _parse_hours, default=(time(9), time(17)))
    availability = field("availability", choice(Availability.values), default=Availability.AVAILABLE)
    away_until = field("away_until", date.fromisoformat, default=None)
    cap = field("capacity", capacity, default=10)
    active = field("active", boolean, default=True)
    work_days = field("working_days", parse_work_days, default=list(WORKING_WEEK))
    if availability == Availability.AWAY and away_until is None and "away_until" not in raw:
        errors.append("away_until is required when availability is away")
    if hours and hours[0] == hours[1]:
        errors.append("working_hours start and end at the same time")
    if errors:
        return None, errors
    entry = _Entry(
        name=name,
        email=address,
        role=role,
        manager=manager,
        skills=skill_levels,
        timezone=tz,
        work_start=hours[0],
        work_end=hours[1],
        availability=availability,
        away_until=away_until,
        capacity=cap,
        active=active,
        work_days=work_days,
    )
    return entry, []


def _raise(message: str):
    raise ValueError(message)


def _label(index: int, raw: Any) -> str:
    who = raw.get("email") or raw.get("name") if isinstance(raw, dict) else None
    return f"member {index + 1}" + (f" ({who})" if who else "")


def parse_directory(data: Any) -> list[_Entry]:
    """Validate a whole directory; raise DirectoryError listing every problem found."""
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        raise DirectoryError(['The file must be an object with a "members" list.'])
    entries, errors = [], []
    for index, raw in enumerate(data["members"]):
        entry, problems = _parse_entry(raw)
        errors.extend(f"{_label(index, raw)}: {problem}" for problem in problems)
        if entry is not None:
            entries.append(entry)
    seen: set[str] = set()
    for entry in entries:
        if entry.email in seen:
            errors.append(f"{entry.email}: listed twice")
        seen.add(entry.email)
    known = seen | {address.lower() for address in TeamMember.objects.values_list("user__email", flat=True)}
    for entry in entries:
        if entry.manager and entry.manager not in known:
            errors.append(f"{entry.email}: manager {entry.manager} is neither in the file nor in the directory")
        if entry.manager == entry.email:
            errors.append(f"{entry.email}: cannot be their own manager")
    if errors:
        raise DirectoryError(errors)
    return entries


@transaction.atomic
def import_directory(data: Any) -> list[TeamMember]:
    """Create or update members from a directory; all of it or, on any error, none of it.

    Members are matched by email. Their logins are created without a usable
    password; people set one through the admin or a password reset.
    """
    entries = parse_directory(data)
    User = get_user_model()
    members: dict[str, TeamMember] = {}
    for entry in entries:
        first, _, last = entry.name.partition(" ")
        user = User.objects.filter(email__iexact=entry.email).first()
        if user is None:
            user = User(username=entry.email, email=entry.email)
            user.set_unusable_password()
        user.first_name, user.last_name = first, last
        user.save()
        member, _ = TeamMember.objects.update_or_create(
            user=user,
            defaults={
                "role": entry.role,
                "skills": entry.skills,
                "timezone": entry.timezone,
                "work_start": entry.work_start,
                "work_end": entry.work_end,
                "availability": entry.availability,
                "away_until": entry.away_until,
                "capacity": entry.capacity,
                "active": entry.active,
                "work_days": entry.work_days,
            },
        )
        members[entry.email] = member
    # Managers second, once everyone in the file exists.
    for entry in entries:
        member = members[entry.email]
        manager = None
        if entry.manager:
            manager = members.get(entry.manager) or TeamMember.objects.get(user__email__iexact=entry.manager)
        member.manager = manager
        try:
            member.clean()
        except ValidationError as exc:
            raise DirectoryError([f"{entry.email}: {message}" for message in exc.messages]) from exc
        member.save(update_fields=["manager"])
    return list(members.values())


def export_directory() -> dict[str, Any]:
    """Return the directory in the format import_directory reads."""
    members = TeamMember.objects.select_related("user", "manager__user").order_by("user__email")
    return {
        "members": [
            {
                "name": member.user.get_full_name() or member.user.get_username(),
                "email": member.user.email,
                "role": member.role,
                "manager": member.manager.user.email if member.manager else None,
                "skills": member.skills,
                "timezone": member.timezone,
                "working_hours": f"{member.work_start:%H:%M}-{member.work_end:%H:%M}",
                **({} if member.work_days == WORKING_WEEK else {"working_days": format_work_days(member.work_days)}),
                "availability": member.availability,
                **({"away_until": member.away_until.isoformat()} if member.away_until else {}),
                "capacity": member.capacity,
                **({} if member.active else {"active": False}),
            }
            for member in members
        ]
    }
