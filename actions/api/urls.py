"""URLs of the REST API, version 1: each resource module lists its own."""

from __future__ import annotations

from django.urls import path

from actions.api import actions, approvals, audit, runs, stats, switch, team
from actions.api.emails import InboundEmailView

app_name = "api"

urlpatterns = [
    path("emails/", InboundEmailView.as_view(), name="email-create"),
    *actions.urlpatterns,
    *approvals.urlpatterns,
    *runs.urlpatterns,
    *audit.urlpatterns,
    *team.urlpatterns,
    *switch.urlpatterns,
    *stats.urlpatterns,
]
