"""API endpoints: being written (issue 8)."""

from __future__ import annotations

urlpatterns: list = []
