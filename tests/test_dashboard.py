"""The figures where people and programs read them: GET /api/v1/stats/, `manage.py stats`, the admin dashboard,
and a run's live status in the admin."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import ManagementUtility, call_command
from django.urls import reverse
from django.utils import timezone

from actions.models import ProcessingRun, RunStatus, RunStep
from tests.api_people import client_for
from tests.test_stats import build_known_figures

STATS = "/api/v1/stats/"
DASHBOARD = "/admin/dashboard/"
DASHBOARD_JSON = "/admin/dashboard/stats.json"


@pytest.fixture
def known(make_email):
    return build_known_figures(make_email)


def grant(user, codename: str = "view_action") -> None:
    user.user_permissions.add(Permission.objects.get(content_type__app_label="actions", codename=codename))


# --- GET /api/v1/stats/ ----------------------------------------------------------------------------------------


def test_the_owner_reads_the_figures(world):
    response = client_for(world.owner).get(STATS)
    assert response.status_code == 200, response.content
    figures = response.json()
    assert figures["actions"]["total"] == 3
    assert {row["key"]: row["count"] for row in figures["actions"]["by_status"]}["proposed"] == 3
    assert figures["queue_depth"] == {"normal": 0, "urgent": 0}
    assert figures["approvals"]["waiting"] == 1
    assert set(figures) == {
        "generated_at",
        "actions",
        "outcomes",
        "queue_depth",
        "processing_times",
        "approvals",
        "circuits",
    }


@pytest.mark.parametrize("persona", ["approver", "member", "outsider"])
def test_anyone_without_the_permission_to_view_every_action_is_refused(world, persona):
    response = client_for(getattr(world, persona)).get(STATS)
    assert response.status_code == 403
    assert "permission to view all actions" in response.json()["detail"]


def test_a_stranger_is_asked_who_they_are(world):
    assert client_for(None).get(STATS).status_code == 401


def test_a_user_given_the_view_permission_reads_the_figures_on_known_data(known, charlie):
    grant(charlie)
    figures = client_for(charlie).get(STATS).json()
    assert figures["outcomes"]["last_24h"]["success_rate"] == 0.75
    assert figures["processing_times"]["actions"] == {"count": 6, "median": 7.0, "p95": 17.5}
    assert {"name": "tasks", "state": "open"} in figures["circuits"]


# --- manage.py stats -------------------------------------------------------------------------------------------


def test_the_stats_command_prints_a_table_of_the_figures(known):
    out = StringIO()
    call_command("stats", stdout=out)
    lines = out.getvalue().splitlines()
    assert "Actions by status (11 in all)" in lines
    # Rows are indented; the label column is 28 wide.
    row = {line[:30].strip(): line[30:].strip() for line in lines if line.startswith("  ")}
    assert (row["Succeeded"], row["Queued"], row["Dead (gave up)"]) == ("4", "3", "1")
    assert (row["normal"], row["urgent"]) == ("2", "1")
    assert (row["tasks"], row["chat"], row["mail"]) == ("open", "half open", "closed")
    assert any(line.split()[:3] == ["last", "24", "h"] and line.endswith("75.0%") for line in lines)
    assert any(line.split() == ["actions", "6", "7.0", "s", "17.5", "s"] for line in lines)
    assert any(line.split() == ["oldest", "has", "waited", "4.0", "h"] for line in lines)


def test_the_stats_command_prints_json_shaped_as_the_api(known, alice):
    out = StringIO()
    call_command("stats", "--json", stdout=out)
    printed = json.loads(out.getvalue())
    served = client_for(alice).get(STATS).json()
    assert printed["actions"] == served["actions"]
    assert printed["approvals"]["waiting"] == 3


def test_the_stats_command_exits_0(known, capsys):
    # ManagementUtility is what manage.py runs: it calls sys.exit only when a command fails.
    ManagementUtility(["manage.py", "stats", "--json"]).execute()
    assert json.loads(capsys.readouterr().out)["queue_depth"] == {"normal": 2, "urgent": 1}
    with pytest.raises(SystemExit) as bad_arguments:
        ManagementUtility(["manage.py", "stats", "--no-such-option"]).execute()
    assert bad_arguments.value.code == 2


def test_the_stats_commands_help_explains_it():
    done = subprocess.run(
        [sys.executable, "manage.py", "stats", "--help"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    help_text = " ".join(done.stdout.split())
    assert "success and failure rates" in help_text
    assert "--json" in help_text
    assert "Exit codes: 0" in help_text


# --- the admin dashboard ---------------------------------------------------------------------------------------


def test_the_dashboard_shows_the_figures_to_the_owner(client, alice, known):
    client.force_login(alice)
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    page = response.content.decode()
    for figure, text in [
        ("actions.by_status.succeeded.count", "4"),
        ("queue_depth.urgent", "1"),
        ("outcomes.last_24h.success_rate", "75.0%"),
        ("processing_times.runs.p95", "9.0 s"),
        ("approvals.oldest_age", "4.0 h"),
        ("circuits.tasks.state", "open"),
    ]:
        assert f'data-path="{figure}"' in page
        assert response.context["charts"] is not None
        assert text == _shown(page, figure)
    assert 'data-state="half_open" data-circuit="chat"' in page
    # The longest bar of a chart is full; the others are as long as their share of it.
    by_status = {row["path"]: row["width"] for row in response.context["charts"]["by_status"]["rows"]}
    assert by_status["actions.by_status.succeeded.count"] == "100.0"
    assert by_status["actions.by_status.queued.count"] == "75.0"


def _shown(page: str, figure: str) -> str:
    """The text of the first element showing `figure`."""
    start = page.index(f'data-path="{figure}"')
    return page[page.index(">", start) + 1 : page.index("<", start)].strip()


def test_the_dashboards_json_is_the_apis_snapshot(client, alice, known):
    client.force_login(alice)
    figures = client.get(DASHBOARD_JSON).json()
    assert figures["actions"] == client_for(alice).get(STATS).json()["actions"]


def test_the_admin_index_links_to_the_dashboard(client, alice):
    client.force_login(alice)
    assert f'href="{DASHBOARD}"' in client.get(reverse("admin:index")).content.decode()


def test_staff_without_the_permission_to_view_every_action_are_refused(client, bob):
    client.force_login(bob)
    assert client.get(DASHBOARD).status_code == 403
    assert client.get(DASHBOARD_JSON).status_code == 403
    assert f'href="{DASHBOARD}"' not in client.get(reverse("admin:index")).content.decode()
    grant(bob)
    assert client.get(DASHBOARD).status_code == 200


@pytest.mark.parametrize("url", [DASHBOARD, DASHBOARD_JSON])
def test_the_dashboard_is_refused_to_anyone_not_staff(client, charlie, url):
    grant(charlie)  # a permission does not make anyone staff
    client.force_login(charlie)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# --- a run's live status in the admin --------------------------------------------------------------------------


@pytest.fixture
def running_run(make_email) -> ProcessingRun:
    now = timezone.now()
    run = ProcessingRun.objects.create(email=make_email(), status=RunStatus.RUNNING, started_at=now)
    RunStep.objects.create(
        run=run, name="intake", status=RunStatus.SUCCEEDED, started_at=now, finished_at=now + timedelta(seconds=1)
    )
    RunStep.objects.create(run=run, name="analyse", status=RunStatus.RUNNING, started_at=now + timedelta(seconds=1))
    return run


def status_url(run: ProcessingRun) -> str:
    return reverse("admin:actions_processingrun_status", args=[run.pk])


def test_the_run_page_follows_a_running_run(client, alice, running_run):
    client.force_login(alice)
    page = client.get(reverse("admin:actions_processingrun_change", args=[running_run.pk])).content.decode()
    assert f'data-status-url="{status_url(running_run)}" data-finished="false"' in page
    assert "actions/run_status.js" in page


def test_the_run_status_view_answers_the_runs_status_and_timeline(
    client, alice, running_run, django_assert_max_num_queries
):
    client.force_login(alice)
    with django_assert_max_num_queries(8):  # session, user, the run, its steps and its last audit entry
        status = client.get(status_url(running_run)).json()
    assert (status["status"], status["finished"]) == ("running", False)
    assert [(step["name"], step["status"]) for step in status["steps"]] == [
        ("intake", "succeeded"),
        ("analyse", "running"),
    ]
    assert 'data-step="analyse"' in status["timeline_html"]
    ProcessingRun.objects.filter(pk=running_run.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    assert client.get(status_url(running_run)).json()["finished"] is True


def test_the_run_status_view_is_for_staff_who_may_view_runs(client, bob, charlie, running_run):
    client.force_login(bob)
    assert client.get(status_url(running_run)).status_code == 403
    grant(bob, "view_processingrun")
    assert client.get(status_url(running_run)).status_code == 200
    assert client.get(reverse("admin:actions_processingrun_status", args=[running_run.pk + 99])).status_code == 404
    client.force_login(charlie)
    assert client.get(status_url(running_run)).status_code == 302
