"""The review queue and the run page in the admin: a person accepts, edits or discards proposals; runs are
read as a timeline and paused, resumed or cancelled.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from actions.models import ActionStatus, AuditEntry, EmailStatus, ProcessingRun, RunStatus
from actions.pipeline import process_runs
from integrations.llm import ProposedAction
from tests.test_pipeline import ScriptedBackend, analysis


@pytest.fixture
def reviewed_run(make_email, monkeypatch):
    """A run whose analysis left three proposals as suggestions (confidence under the suggest threshold)."""
    monkeypatch.setattr("actions.runlog.async_task", lambda *args, **kwargs: None)
    email = make_email(subject="Odd request")
    run = ProcessingRun.objects.create(email=email, status=RunStatus.PENDING)
    run.steps.create(name="intake", status=RunStatus.SUCCEEDED)
    process_runs(
        [run],
        backend=ScriptedBackend(
            analysis(
                ProposedAction("send_reply", {"body": "Thanks, we will look."}, 0.3),
                ProposedAction("create_task", {"title": "Check the odd request"}, 0.3),
                ProposedAction("archive_email", {}, 0.3),
            )
        ),
    )
    return run


def change_url(email) -> str:
    return reverse("admin:actions_reviewitem_change", args=[email.pk])


def form_data(run: ProcessingRun, decisions: dict[str, tuple[str, str]], done: bool = False) -> dict:
    """The review page's POST: for each proposal (by type) a decision and its parameters as JSON."""
    actions = list(run.actions.order_by("pk"))
    data = {
        "actions-TOTAL_FORMS": str(len(actions)),
        "actions-INITIAL_FORMS": str(len(actions)),
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "1000",
        "note": "checked by hand",
    }
    if done:
        data["done"] = "on"
    for index, action in enumerate(actions):
        decision, params = decisions.get(action.type, ("", None))
        data[f"actions-{index}-id"] = str(action.pk)
        data[f"actions-{index}-email"] = str(run.email_id)
        data[f"actions-{index}-decision"] = decision
        data[f"actions-{index}-params"] = params if params is not None else __import__("json").dumps(action.params)
    return data


def test_the_queue_lists_the_messages_waiting_for_a_person(client, alice, reviewed_run):
    client.force_login(alice)
    page = client.get(reverse("admin:actions_reviewitem_changelist")).content.decode()
    assert "Odd request" in page
    assert "only suggestions" in page
    reviewed_run.email.refresh_from_db()
    assert reviewed_run.email.status == EmailStatus.REVIEW


def test_a_reviewer_accepts_edits_and_discards_proposals(client, alice, reviewed_run):
    client.force_login(alice)
    email = reviewed_run.email
    response = client.post(
        change_url(email),
        form_data(
            reviewed_run,
            {
                "send_reply": ("accept", '{"body": "Thanks, Dana: we refund it today."}'),
                "create_task": ("discard", None),
            },
            done=True,
        ),
    )
    assert response.status_code == 302, response.content.decode()[-3000:]

    statuses = dict(reviewed_run.actions.values_list("type", "status"))
    # Accepted, the reply goes through the policies with its confidence set aside: a reply to an
    # outside address still waits for an approver under the default external-recipient policy.
    assert statuses == {
        "send_reply": ActionStatus.PENDING_APPROVAL,
        "create_task": ActionStatus.CANCELLED,
        "archive_email": ActionStatus.PROPOSED,
    }
    reply = reviewed_run.actions.get(type="send_reply")
    assert reply.params == {"body": "Thanks, Dana: we refund it today."}
    events = set(AuditEntry.objects.filter(target_id=str(reply.pk)).values_list("event", flat=True))
    assert {"action.edited", "action.accepted", "action.pending_approval"} <= events
    email.refresh_from_db()
    assert (email.status, email.status_reason) == (EmailStatus.PROCESSED, "checked by hand")
    reviewed = AuditEntry.objects.get(event="email.reviewed", target_id=str(email.pk))
    assert reviewed.actor_label == "alice"


def test_invalid_parameters_are_refused_on_the_page_and_nothing_changes(client, alice, reviewed_run):
    client.force_login(alice)
    response = client.post(
        change_url(reviewed_run.email),
        form_data(reviewed_run, {"send_reply": ("accept", '{"body": ""}')}, done=True),
    )
    assert response.status_code == 200
    assert "body" in response.content.decode()
    assert set(reviewed_run.actions.values_list("status", flat=True)) == {ActionStatus.PROPOSED}
    reviewed_run.email.refresh_from_db()
    assert reviewed_run.email.status == EmailStatus.REVIEW


def test_someone_without_rights_sees_no_queue(client, charlie, reviewed_run):
    client.force_login(charlie)
    response = client.get(reverse("admin:actions_reviewitem_changelist"))
    assert response.status_code == 302  # the admin sends non-staff to its login page


def test_the_run_page_shows_a_timeline_with_log_lines(client, alice, reviewed_run):
    client.force_login(alice)
    page = client.get(reverse("admin:actions_processingrun_change", args=[reviewed_run.pk])).content.decode()
    for step in ("Intake", "Analyse", "Route", "Execute", "Notify"):
        assert f"<strong>{step}</strong>" in page
    assert "Proposed send_reply" in page
    assert "only suggestions" in page


def test_runs_are_paused_resumed_and_cancelled_from_the_admin(client, alice, make_email, monkeypatch):
    monkeypatch.setattr("actions.runlog.async_task", lambda *args, **kwargs: None)
    client.force_login(alice)
    run = ProcessingRun.objects.create(email=make_email(), status=RunStatus.PENDING)
    url = reverse("admin:actions_processingrun_changelist")
    for action, status in (("pause_runs", RunStatus.PAUSED), ("resume_runs", RunStatus.PENDING)):
        client.post(url, {"action": action, "_selected_action": [run.pk]})
        run.refresh_from_db()
        assert run.status == status
    client.post(url, {"action": "cancel_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    # A second cancel is refused with the reason, not an error page.
    response = client.post(url, {"action": "cancel_runs", "_selected_action": [run.pk]}, follow=True)
    assert "nothing to cancel" in response.content.decode()


def test_messages_are_processed_again_from_the_admin_but_quarantined_ones_are_not(
    client, alice, reviewed_run, monkeypatch
):
    from actions.intake.store import ingest_message

    monkeypatch.setattr("actions.runlog.async_task", lambda *args, **kwargs: None)
    quarantined = ingest_message(b"\x00 not mail", mailbox="support@acme.example").email
    client.force_login(alice)
    response = client.post(
        reverse("admin:actions_email_changelist"),
        {"action": "process_again", "_selected_action": [reviewed_run.email_id, quarantined.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Started a new run for 1 message." in page
    assert "quarantined mail is not processed" in page
    assert reviewed_run.email.runs.count() == 2
    assert reviewed_run.email.runs.order_by("-pk").first().status == RunStatus.PENDING
    assert quarantined.runs.count() == 1
    assert AuditEntry.objects.filter(event="run.started").count() == 1
