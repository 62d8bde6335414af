"""URLs of the REST API, version 1: each resource module lists its own."""

from __future__ import annotations

from actions.api import actions, approvals, audit, emails, runs, stats, switch, team

app_name = "api"

urlpatterns = [
    *emails.urlpatterns,
    *actions.urlpatterns,
    *approvals.urlpatterns,
    *runs.urlpatterns,
    *audit.urlpatterns,
    *team.urlpatterns,
    *switch.urlpatterns,
    *stats.urlpatterns,
]
