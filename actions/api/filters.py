"""What API lists of actions and approvals can be narrowed and ordered by."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField, RangeField
from django_filters.widgets import DateRangeWidget
from rest_framework.filters import OrderingFilter

from actions.models import Action, ActionSource, ActionStatus, ActionType, Priority
from approvals.models import Approval, ApprovalStatus


class _StorableDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, in UTC: one out of range there ("0001-01-01T00:00+13:00") is refused, not a 500.

    Converted here because PostgreSQL refuses offsets past 15:59 that Python takes.
    """

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class _StorableDateTimeRangeField(RangeField):
    widget = DateRangeWidget

    def __init__(self, *args, **kwargs) -> None:
        super().__init__((_StorableDateTimeField(), _StorableDateTimeField()), *args, **kwargs)


class DateTimeRangeFilter(django_filters.IsoDateTimeFromToRangeFilter):
    """?NAME_after= and ?NAME_before= (ISO 8601); a date-time out of range is a 400 naming it."""

    field_class = _StorableDateTimeRangeField


class IdFilter(django_filters.NumberFilter):
    """A whole number that fits a database id: an id out of range is refused (400), never sent to the database."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 2**63 - 1)  # SQLite raises OverflowError past this.
        super().__init__(*args, **kwargs)


class StableOrdering(OrderingFilter):
    """The ordering asked for, then the id: rows that tie (same priority) keep their place across pages."""

    def get_ordering(self, request, queryset, view) -> list[str]:
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not any(field.lstrip("-") in ("id", "pk") for field in ordering):
            ordering.append("-id")
        return ordering


class ActionFilter(django_filters.FilterSet):
    """By state, type, priority and source (each repeatable); by email, assignee and run; by creation time."""

    status = django_filters.MultipleChoiceFilter(choices=ActionStatus.choices)
    type = django_filters.MultipleChoiceFilter(choices=ActionType.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    source = django_filters.MultipleChoiceFilter(choices=ActionSource.choices)
    email = IdFilter(field_name="email_id", help_text="The id of the email.")
    assignee = IdFilter(field_name="assignee_id", help_text="The id of the team member.")
    run = IdFilter(field_name="run_id", help_text="The id of the processing run.")
    created_at = DateTimeRangeFilter(
        help_text="Created at or after created_at_after and at or before created_at_before (ISO 8601)."
    )

    class Meta:
        model = Action
        fields = ["status", "type", "priority", "source", "email", "assignee", "run", "created_at"]


class ApprovalFilter(django_filters.FilterSet):
    """?status= (repeatable), ?level=, ?action=."""

    status = django_filters.MultipleChoiceFilter(choices=ApprovalStatus.choices)
    level = IdFilter(max_value=32767, help_text="1 for the first approver; one more per escalation.")
    action = IdFilter(field_name="action_id", help_text="The id of the action.")

    class Meta:
        model = Approval
        fields = ["status", "level", "action"]
