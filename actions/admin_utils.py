"""Small pieces the admin pages of every app share."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html


def checked_params(action_type: str | None, params: Any) -> Any:
    """A form's parameters: an object of named values, valid for the action type's schema when the type is known.

    Raises forms.ValidationError with one message per field the schema refuses.
    """
    from actions.handlers import validation_errors

    if not isinstance(params, dict):
        raise forms.ValidationError('Parameters must be an object of named values, such as {"to": ["..."]}.')
    problems = validation_errors(action_type, params) if action_type else []
    if problems:
        raise forms.ValidationError([f"{field}: {why}" for field, why in problems])
    return params


def apply_each(
    model_admin: admin.ModelAdmin,
    request,
    queryset,
    operation: Callable[[Any], Any],
    *,
    verb: str,
    noun: str,
    refusals: tuple[type[Exception], ...],
    prefix: Callable[[Any], str] = lambda obj: "",
) -> None:
    """An admin action's loop: run `operation` on each selected object, then say how many it did and why the
    others were refused (the refusal's message, after `prefix(obj)`)."""
    done, refused = 0, []
    for obj in queryset:
        try:
            operation(obj)
            done += 1
        except refusals as exc:
            refused.append(f"{prefix(obj)}{exc}")
    if done:
        model_admin.message_user(request, f"{verb} {done} {noun}{'s' if done != 1 else ''}.", messages.SUCCESS)
    for reason in refused:
        model_admin.message_user(request, reason, messages.WARNING)


def pretty_json(value: Any):
    """Render JSON indented in a <pre>, escaped."""
    return format_html(
        '<pre class="mailroom-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False, default=str)
    )


def when(value: datetime | None) -> str:
    """A timestamp in the current time zone, to the second, or "-"."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def admin_link(obj: models.Model | None, text: str | None = None):
    """A link to `obj`'s admin change page, or its text when it has none."""
    if obj is None:
        return "-"
    try:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return text or str(obj)
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


class ReadOnlyAdminMixin:
    """For rows only the system writes: people may look, not add, change or delete."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        # Unlike a view-only ModelAdmin, an inline still builds a form from
        # `fields`, which fails on non-editable ones such as created_at.
        return self.fields or []


def _plain(value: Any) -> Any:
    """A form value as JSON can hold it: related objects by name, the rest as text."""
    if value is None or isinstance(value, (str, int, float, bool, dict)):
        return value
    if isinstance(value, (models.QuerySet, list, tuple, set)):
        return [_plain(item) for item in value]
    return str(value)


class AuditedAdminMixin:
    """Writes an audit entry for every add, change and delete made in the admin.

    The admin runs these inside its own transaction, so the change and its
    entry are saved together.
    """

    def save_model(self, request, obj, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        from actions.audit import record_audit

        event = f"{obj._meta.model_name}.{'changed' if change else 'created'}"
        changed = {name: _plain(form.cleaned_data.get(name)) for name in form.changed_data}
        record_audit(event, target=obj, acting_user=request.user, details={"changed": changed, "via": "admin"})

    def delete_model(self, request, obj) -> None:
        from actions.audit import record_audit

        record_audit(f"{obj._meta.model_name}.deleted", target=obj, acting_user=request.user, details={"via": "admin"})
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
