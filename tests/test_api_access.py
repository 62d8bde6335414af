"""Who sees what through the API (actions/api/access.py), with the four personas of tests/api_people.py."""

from __future__ import annotations

import pytest

from actions.api import access

pytestmark = pytest.mark.security


def ids(queryset) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def test_the_owner_sees_every_action_and_email(world):
    assert ids(access.actions_for(world.owner)) == {
        world.member_action.pk,
        world.approval_action.pk,
        world.other_action.pk,
    }
    assert world.other_email.pk in ids(access.emails_for(world.owner))


def test_a_member_sees_the_actions_assigned_to_them_and_their_emails(world):
    assert ids(access.actions_for(world.member)) == {world.member_action.pk}
    assert ids(access.emails_for(world.member)) == {world.member_email.pk}
    assert access.team_for(world.member).count() == 2


def test_an_approver_sees_what_they_may_decide(world):
    assert ids(access.approvals_for(world.approver)) == {world.approval.pk}
    assert ids(access.actions_for(world.approver)) == {world.approval_action.pk}
    assert ids(access.emails_for(world.approver)) == {world.approval_email.pk}


@pytest.mark.parametrize(
    "seen",
    [access.actions_for, access.emails_for, access.approvals_for, access.runs_for, access.audit_for, access.team_for],
)
def test_an_outsider_sees_nothing(world, seen):
    assert not seen(world.outsider).exists()


def test_only_owners_and_the_assignee_may_change_an_action(world):
    assert access.may_change_action(world.owner, world.member_action)
    assert access.may_change_action(world.member, world.member_action)
    assert not access.may_change_action(world.member, world.other_action)
    assert not access.may_change_action(world.approver, world.approval_action)
    assert not access.may_change_action(world.outsider, world.member_action)
