"""/api/v1/runs/: processing runs with their steps and logs; pause, resume and cancel; the live status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from actions.models import ActionStatus, AuditEntry, Email, ProcessingRun, RunStatus, RunStep, StepName
from actions.runlog import start_run
from tests.api_lists import assert_constant_queries, ids
from tests.api_people import client_for

URL = "/api/v1/runs/"


@pytest.fixture
def runs(world) -> dict[str, ProcessingRun]:
    """A run for each email of the world, its actions attached to it."""
    made = {}
    for name in ("member", "approval", "other"):
        email, action = getattr(world, f"{name}_email"), getattr(world, f"{name}_action")
        made[name] = start_run(email, [f"Fetched {email.subject}."])
        action.__class__.objects.filter(pk=action.pk).update(run=made[name])
    return made


def test_the_owner_lists_every_run(world, runs):
    assert ids(client_for(world.owner).get(URL)) == {run.pk for run in runs.values()}


@pytest.mark.parametrize(("persona", "run"), [("member", "member"), ("approver", "approval"), ("outsider", None)])
def test_the_others_list_only_the_runs_of_emails_they_may_see(world, runs, persona, run):
    assert ids(client_for(getattr(world, persona)).get(URL)) == ({runs[run].pk} if run else set())


def test_a_run_shows_its_steps_with_timings_and_log_lines_and_its_actions(world, runs):
    run = runs["member"]
    started = timezone.now()
    RunStep.objects.create(
        run=run,
        name=StepName.ANALYSE,
        status=RunStatus.SUCCEEDED,
        started_at=started,
        finished_at=started + timedelta(seconds=2),
        log=[{"at": started.isoformat(), "message": "Read by the rules backend."}, "A line from an old demo run."],
    )

    body = client_for(world.member).get(f"{URL}{run.pk}/").json()

    assert [(step["name"], step["status"]) for step in body["steps"]] == [
        ("intake", "succeeded"),
        ("analyse", "succeeded"),
    ]
    analyse = body["steps"][1]
    assert analyse["duration"] == 2.0
    assert [line["message"] for line in analyse["log"]] == [
        "Read by the rules backend.",
        "A line from an old demo run.",
    ]
    assert analyse["log"][1]["at"] is None
    assert body["steps"][0]["log"][0]["message"] == f"Fetched {world.member_email.subject}."
    assert body["actions"] == [{"id": world.member_action.pk, "type": "create_task", "status": "proposed"}]


@pytest.mark.parametrize("persona", ["member", "approver", "outsider"])
@pytest.mark.security
def test_a_run_of_an_email_they_may_not_see_is_not_found(world, runs, persona):
    client = client_for(getattr(world, persona))
    assert client.get(f"{URL}{runs['other'].pk}/").status_code == 404
    assert client.get(f"{URL}{runs['other'].pk}/status/").status_code == 404
    assert client.post(f"{URL}{runs['other'].pk}/pause/").status_code == 404
    assert ProcessingRun.objects.get(pk=runs["other"].pk).status == RunStatus.PENDING


def test_runs_are_filtered_by_status_email_and_reason(world, runs):
    ProcessingRun.objects.filter(pk=runs["other"].pk).update(status=RunStatus.FAILED, reason="The backend timed out")
    owner = client_for(world.owner)
    assert ids(owner.get(URL, {"status": "failed"})) == {runs["other"].pk}
    assert ids(owner.get(URL, {"status": ["failed", "pending"]})) == {run.pk for run in runs.values()}
    assert ids(owner.get(URL, {"email": world.member_email.pk})) == {runs["member"].pk}
    assert ids(owner.get(URL, {"reason": "timed out"})) == {runs["other"].pk}
    assert owner.get(URL, {"status": "sleeping"}).status_code == 400


def test_the_owner_pauses_and_resumes_a_run_and_the_trail_says_who(world, runs):
    owner, run = client_for(world.owner), runs["other"]

    paused = owner.post(f"{URL}{run.pk}/pause/", {"reason": "Checking the rules"})
    assert paused.status_code == 200, paused.content
    assert (paused.json()["status"], paused.json()["reason"]) == ("paused", "Checking the rules")

    resumed = owner.post(f"{URL}{run.pk}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "pending"
    trail = AuditEntry.objects.for_object(run).order_by("pk")
    assert [(entry.event, entry.actor_label) for entry in trail] == [
        ("run.paused", "alice"),
        ("run.resumed", "alice"),
    ]


def test_cancelling_a_run_cancels_its_actions_that_have_not_started(world, runs):
    response = client_for(world.owner).post(f"{URL}{runs['other'].pk}/cancel/", {"reason": "Spam"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert response.json()["actions"] == [{"id": world.other_action.pk, "type": "archive_email", "status": "cancelled"}]
    world.other_action.refresh_from_db()
    assert world.other_action.status == ActionStatus.CANCELLED


def test_a_change_the_runs_state_does_not_allow_is_a_conflict_with_the_reason(world, runs):
    response = client_for(world.owner).post(f"{URL}{runs['other'].pk}/resume/")
    assert response.status_code == 409
    assert "not paused" in response.json()["detail"]


@pytest.mark.parametrize("persona", ["member", "approver"])
def test_who_sees_a_run_but_may_not_change_it_is_refused(world, runs, persona):
    run = runs["member" if persona == "member" else "approval"]
    for change in ("pause", "resume", "cancel"):
        response = client_for(getattr(world, persona)).post(f"{URL}{run.pk}/{change}/")
        assert response.status_code == 403, (change, response.content)
        assert "actions.change_processingrun" in response.json()["detail"]
    assert ProcessingRun.objects.get(pk=run.pk).status == RunStatus.PENDING


def test_the_permission_lets_a_member_pause_the_runs_they_see(world, runs):
    world.member.user_permissions.add(Permission.objects.get(codename="change_processingrun"))
    response = client_for(world.member).post(f"{URL}{runs['member'].pk}/pause/")
    assert response.status_code == 200 and response.json()["status"] == "paused"


def test_the_live_status_is_small_and_moves_when_the_run_does(world, runs):
    owner, run = client_for(world.owner), runs["other"]

    before = owner.get(f"{URL}{run.pk}/status/")
    assert before.status_code == 200
    body = before.json()
    assert set(body) == {"status", "steps", "updated_at"}
    assert body["status"] == "pending"
    assert body["steps"] == [
        {
            "name": "intake",
            "status": "succeeded",
            "started_at": body["steps"][0]["started_at"],
            "finished_at": body["steps"][0]["finished_at"],
        }
    ]

    owner.post(f"{URL}{run.pk}/pause/")
    after = owner.get(f"{URL}{run.pk}/status/").json()
    assert after["status"] == "paused"
    assert after["updated_at"] > body["updated_at"]


def test_the_live_status_is_for_whoever_sees_the_run(world, runs):
    assert client_for(world.member).get(f"{URL}{runs['member'].pk}/status/").status_code == 200
    assert client_for(None).get(f"{URL}{runs['member'].pk}/status/").status_code == 401


@pytest.mark.parametrize("persona", ["owner", "member"])
def test_a_page_of_runs_costs_the_same_whatever_its_size(world, persona):
    ProcessingRun.objects.bulk_create(ProcessingRun(email=world.member_email) for _ in range(110))
    assert_constant_queries(client_for(getattr(world, persona)), URL)


def test_an_email_with_many_runs_lists_them_all_in_its_detail(world, runs):
    start_run(world.member_email, ["Again."])
    body = client_for(world.member).get(f"/api/v1/emails/{world.member_email.pk}/").json()
    assert body["runs"] == list(
        Email.objects.get(pk=world.member_email.pk).runs.order_by("-created_at", "-id").values_list("pk", flat=True)
    )
