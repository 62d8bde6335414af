"""In Chromium: the admin dashboard draws the figures and refreshes them; a run's page follows the run live.

The browser, the screenshots and the login come from tests/browser.py (read its
docstring: Playwright's event loop runs on the test's thread, where Django
refuses the ORM). The changes made while a page is open run on another thread,
as a worker's would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from actions.admin import dashboard
from actions.models import ActionStatus, Priority, ProcessingRun, RunStatus, RunStep
from actions.runlog import log_line
from tests.browser import log_in
from tests.test_stats import add_action, build_known_figures

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("live_site"),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

PASSWORD = "alice-password"  # conftest's alice
# Colours of the circuit pills (the dashboard's --good, --warn and --bad).
GREEN, AMBER, RED = "rgb(21, 128, 61)", "rgb(180, 83, 9)", "rgb(185, 28, 28)"


@pytest.fixture
def owner(transactional_db, alice):
    """alice, the owner, in a database the live server sees (committed, flushed after the test)."""
    return alice


def in_another_thread(change: Callable[[], object]) -> None:
    """Make a change in the database from a thread of its own, as a worker would while the page is open."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            change()
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if failures:
        raise failures[0]


def shown(page, figure: str) -> str:
    return page.locator(f'#mr-dashboard [data-path="{figure}"]').first.text_content().strip()


def bar_width(page, figure: str) -> float:
    """How long the bar of `figure` is, in percent of its track (as set: its drawn width may be gliding there)."""
    return page.locator(f'#mr-dashboard [data-bar="{figure}"]').evaluate("bar => parseFloat(bar.style.width)")


def colour(page, circuit: str) -> str:
    return page.locator(f'[data-circuit="{circuit}"]').evaluate("pill => getComputedStyle(pill).backgroundColor")


@pytest.fixture
def known(owner, make_email):
    """The owner, and the moment of the figures of test_stats (build_known_figures says what they must be)."""
    return owner, build_known_figures(make_email)


@pytest.fixture
def quick_refresh(monkeypatch) -> None:
    monkeypatch.setattr(dashboard, "REFRESH_MILLISECONDS", 500)


@pytest.mark.usefixtures("quick_refresh")
def test_the_dashboard_draws_the_figures_and_refreshes_them(chromium, screenshot, live_server, known):
    owner, now = known
    with chromium() as page:
        page.goto(f"{live_server.url}/admin/")
        log_in(page, owner.username, PASSWORD)
        page.click("#mr-dashboard-link a.section")
        page.wait_for_load_state()
        assert page.url == f"{live_server.url}/admin/dashboard/", page.url
        drawn_by_the_server = page.inner_text("#mr-dashboard .mr-grid")
        # Wait until the page has drawn itself again from the JSON: both must read the same.
        page.wait_for_function("Number(document.getElementById('mr-dashboard').dataset.refreshes) > 0")
        assert page.inner_text("#mr-dashboard .mr-grid") == drawn_by_the_server
        assert shown(page, "actions.total") == "11"
        assert shown(page, "actions.by_status.succeeded.count") == "4"
        assert shown(page, "actions.by_type.send_reply.count") == "4"
        assert shown(page, "outcomes.last_24h.success_rate") == "75.0%"
        assert shown(page, "outcomes.all_time.success_rate") == "66.7%"
        assert (shown(page, "queue_depth.normal"), shown(page, "queue_depth.urgent")) == ("2", "1")
        assert shown(page, "processing_times.runs.median") == "3.0 s"
        assert shown(page, "processing_times.actions.p95") == "17.5 s"
        assert (shown(page, "approvals.waiting"), shown(page, "approvals.oldest_age")) == ("3", "4.0 h")
        # Bars are as long as their figure against the longest of their chart: 3 queued of 4 succeeded.
        assert bar_width(page, "actions.by_status.succeeded.count") == 100
        assert bar_width(page, "actions.by_status.queued.count") == 75
        assert (colour(page, "tasks"), colour(page, "chat"), colour(page, "mail")) == (RED, AMBER, GREEN)
        screenshot(page, "1-dashboard")

        in_another_thread(
            lambda: [add_action("escalate_issue", ActionStatus.QUEUED, now, priority=Priority.URGENT) for _ in range(3)]
        )
        page.wait_for_function(
            "document.querySelector('#mr-dashboard [data-path=\"queue_depth.urgent\"]').textContent === '4'"
        )
        assert shown(page, "actions.total") == "14"
        # The urgent lane is now the longest bar of its chart, twice the normal one.
        assert (bar_width(page, "queue_depth.normal"), bar_width(page, "queue_depth.urgent")) == (50, 100)
        page.wait_for_timeout(500)  # the bars glide to their new length
        screenshot(page, "2-refreshed")


@pytest.fixture
def running_run(owner, make_email) -> ProcessingRun:
    """A run that has read its email and is analysing it."""
    now = timezone.now() - timedelta(seconds=30)
    run = ProcessingRun.objects.create(email=make_email(), status=RunStatus.RUNNING, started_at=now)
    RunStep.objects.create(
        run=run,
        name="intake",
        status=RunStatus.SUCCEEDED,
        started_at=now,
        finished_at=now + timedelta(seconds=1),
        log=[log_line("Stored the message", now)],
    )
    RunStep.objects.create(run=run, name="analyse", status=RunStatus.RUNNING, started_at=now + timedelta(seconds=1))
    return run


def finish_analysis_and_start_routing(run: ProcessingRun) -> None:
    now = timezone.now()
    step = RunStep.objects.get(run=run, name="analyse")
    step.status, step.finished_at, step.log = RunStatus.SUCCEEDED, now, [log_line("Proposed 1 action", now)]
    step.save()
    RunStep.objects.create(run=run, name="route", status=RunStatus.RUNNING, started_at=now)


def finish_the_run(run: ProcessingRun) -> None:
    now = timezone.now()
    RunStep.objects.filter(run=run, name="route").update(status=RunStatus.SUCCEEDED, finished_at=now)
    ProcessingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=now)


def test_the_run_page_follows_the_run_without_reloading(chromium, screenshot, live_server, running_run):
    url = live_server.url + reverse("admin:actions_processingrun_change", args=[running_run.pk])
    with chromium() as page:
        page.goto(url)
        log_in(page, "alice", PASSWORD)
        assert page.url == url, page.url
        status = page.locator(".field-status .readonly")
        step = page.locator(".mr-run [data-step]")
        assert status.inner_text() == "Running"
        assert step.count() == 2
        assert "Analyse · Running" in page.inner_text('.mr-run [data-step="analyse"]')
        screenshot(page, "1-analysing")
        loads = []
        page.on("load", lambda _: loads.append(page.url))

        in_another_thread(lambda: finish_analysis_and_start_routing(running_run))
        page.wait_for_selector('.mr-run [data-step="route"]')
        assert "Analyse · Succeeded" in page.inner_text('.mr-run [data-step="analyse"]')
        assert "Proposed 1 action" in page.inner_text('.mr-run [data-step="analyse"]')
        assert "Route · Running" in page.inner_text('.mr-run [data-step="route"]')
        assert status.inner_text() == "Running"
        screenshot(page, "2-a-step-finished")

        in_another_thread(lambda: finish_the_run(running_run))
        page.wait_for_function("document.querySelector('.field-status .readonly').textContent === 'Succeeded'")
        assert page.locator(".mr-run").get_attribute("data-finished") == "true"
        assert "Route · Succeeded" in page.inner_text('.mr-run [data-step="route"]')
        screenshot(page, "3-finished")
        assert loads == []  # all of it without reloading

        # A finished run is not asked about again.
        polls = []
        page.on("request", lambda request: polls.append(request.url) if "/status/" in request.url else None)
        page.wait_for_timeout(4500)
        assert polls == []
