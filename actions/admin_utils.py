"""Small pieces the admin pages of every app share."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html


def pretty_json(value: Any):
    """Render JSON indented in a <pre>, escaped."""
    return format_html(
        '<pre class="mailroom-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False, default=str)
    )


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
