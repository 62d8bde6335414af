"""The team directory: who can do the work, approve it, or take an escalation."""

from __future__ import annotations

import zoneinfo
from datetime import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class Role(models.TextChoices):
    # Declared from the bottom of the hierarchy up; ROLE_RANK follows this order.
    AGENT = "agent", "Agent"
    LEAD = "lead", "Lead"
    MANAGER = "manager", "Manager"
    DIRECTOR = "director", "Director"


ROLE_RANK = {role: rank for rank, role in enumerate(Role.values, start=1)}


def role_above(role: str) -> str | None:
    """The next role up the hierarchy, or None at the top."""
    index = Role.values.index(role)
    return Role.values[index + 1] if index + 1 < len(Role.values) else None


class Availability(models.TextChoices):
    AVAILABLE = "available", "Available"
    BUSY = "busy", "Busy"
    AWAY = "away", "Away"


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]  # index = date.weekday()
WORKING_WEEK = [0, 1, 2, 3, 4]


def default_work_days() -> list[int]:
    return list(WORKING_WEEK)


def validate_work_days(value: object) -> None:
    if not isinstance(value, list) or not value or any(day not in range(7) for day in value):
        raise ValidationError("Working days are a non-empty list of weekdays, 0 (Monday) to 6 (Sunday).")


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone such as Europe/Rome.")


def validate_skills(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Skills must be an object of skill name to level, e.g. {"billing": 4}.')
    for skill, level in value.items():
        if not isinstance(skill, str) or not skill.strip():
            raise ValidationError(f"Skill name {skill!r} must be non-empty text.")
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 5:
            raise ValidationError(f"Skill '{skill}' has level {level!r}; levels are whole numbers from 1 to 5.")


class TeamMember(models.Model):
    """A person on the team, linked to their login."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_member")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    manager = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    skills = models.JSONField(
        default=dict, blank=True, validators=[validate_skills], help_text="Skill name to level 1-5."
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    work_start = models.TimeField(default=time(9, 0), help_text="Start of working hours, in their own time zone.")
    work_end = models.TimeField(
        default=time(17, 0), help_text="End of working hours; before the start means overnight."
    )
    work_days = models.JSONField(
        default=default_work_days,
        validators=[validate_work_days],
        help_text="Weekdays they work, 0 (Monday) to 6 (Sunday); the day their working hours start on.",
    )
    availability = models.CharField(max_length=16, choices=Availability.choices, default=Availability.AVAILABLE)
    away_until = models.DateField(null=True, blank=True, help_text="When away: the first day back.")
    capacity = models.PositiveSmallIntegerField(default=10, help_text="How many open items they can hold.")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["user__last_name", "user__first_name", "user__username"]
        indexes = [models.Index(fields=["active", "role"], name="member_active_role")]

    def __str__(self) -> str:
        return self.user.get_full_name() or self.user.get_username()

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def role_rank(self) -> int:
        return ROLE_RANK[self.role]

    def clean(self) -> None:
        if self.work_start == self.work_end:
            raise ValidationError({"work_end": "Working hours must not start and end at the same time."})
        if self.availability == Availability.AWAY and self.away_until is None:
            raise ValidationError({"away_until": "Say until when the member is away."})
        # Walk up the chain: a member cannot end up managing themselves.
        seen = {self.pk}
        manager = self.manager
        while manager is not None:
            if manager.pk in seen:
                raise ValidationError({"manager": "This manager would make the reporting chain a loop."})
            seen.add(manager.pk)
            manager = manager.manager
