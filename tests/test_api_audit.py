"""/api/v1/audit/: the audit trail through the API, read only and for owners only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actions.audit import record_audit
from actions.models import AuditEntry
from tests.api_lists import assert_constant_queries, ids
from tests.api_people import client_for

URL = "/api/v1/audit/"


@pytest.fixture
def trail(world) -> list[AuditEntry]:
    """The proposals the world made, then a person's approval and a worker's run."""
    approved = record_audit("action.approved", target=world.approval_action, acting_user=world.approver)
    ran = record_audit("action.succeeded", target=world.other_action, actor="worker", details={"token": "s3cret"})
    return [approved, ran]


def test_the_owner_reads_the_trail_newest_first(world, trail):
    rows = client_for(world.owner).get(URL).json()["results"]
    assert [row["id"] for row in rows] == list(
        AuditEntry.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    approved = next(row for row in rows if row["id"] == trail[0].pk)
    assert approved == {
        "id": trail[0].pk,
        "created_at": approved["created_at"],
        "event": "action.approved",
        "actor": world.approver.pk,
        "actor_label": "petra",
        "target_type": "actions.action",
        "target_id": str(world.approval_action.pk),
        "target_repr": str(world.approval_action),
        "details": {},
    }


@pytest.mark.security
def test_secrets_stay_masked_through_the_api(world, trail):
    body = client_for(world.owner).get(f"{URL}{trail[1].pk}/").json()
    assert body["details"] == {"token": "********"}


@pytest.mark.security
@pytest.mark.parametrize("persona", ["member", "approver", "outsider"])
def test_nobody_but_owners_sees_the_trail(world, trail, persona):
    client = client_for(getattr(world, persona))
    assert ids(client.get(URL)) == set()
    assert client.get(f"{URL}{trail[0].pk}/").status_code == 404


def test_the_trail_is_filtered_by_event_actor_target_and_time(world, trail):
    owner = client_for(world.owner)
    assert ids(owner.get(URL, {"event": "action.approved"})) == {trail[0].pk}
    assert ids(owner.get(URL, {"actor": "Worker"})) == {trail[1].pk}
    assert ids(owner.get(URL, {"actor_id": world.approver.pk})) == {trail[0].pk}
    on_other = {"target_type": "actions.action", "target_id": str(world.other_action.pk)}
    assert trail[1].pk in ids(owner.get(URL, on_other))
    assert trail[0].pk not in ids(owner.get(URL, on_other))
    assert ids(owner.get(URL, {"target_type": "teams.teammember"})) == set()
    assert ids(owner.get(URL, {"created_at_before": "2000-01-01T00:00:00Z"})) == set()
    assert ids(owner.get(URL, {"created_at_after": datetime(2000, 1, 1, tzinfo=UTC).isoformat()})) == set(
        AuditEntry.objects.values_list("pk", flat=True)
    )


@pytest.mark.security
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_the_trail_cannot_be_edited_through_the_api(world, trail, method):
    entry = trail[0]
    response = getattr(client_for(world.owner), method)(f"{URL}{entry.pk}/", {"event": "nothing.happened"})
    assert response.status_code == 405
    assert AuditEntry.objects.get(pk=entry.pk).event == "action.approved"


@pytest.mark.security
def test_nothing_can_be_added_to_the_trail_through_the_api(world):
    before = AuditEntry.objects.count()
    assert client_for(world.owner).post(URL, {"event": "made.up"}).status_code == 405
    assert AuditEntry.objects.count() == before


def test_a_page_of_the_trail_costs_the_same_whatever_its_size(world):
    for n in range(110):
        record_audit("action.noted", target=world.member_action if n % 2 else None, details={"n": n})
    assert_constant_queries(client_for(world.owner), URL)
