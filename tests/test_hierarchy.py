"""Approvers by role and the escalation chain, on the example directory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.models import LocalTask
from teams.directory import import_directory
from teams.hierarchy import escalation_chain, find_approvers
from teams.models import Availability, Role, TeamMember
from tests.team_data import TEAM, member

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


@pytest.fixture
def team(db) -> dict[str, TeamMember]:
    import_directory({"members": TEAM})
    return {m.user.first_name.lower(): m for m in TeamMember.objects.select_related("user")}


def first_names(members) -> list[str]:
    return [m.user.first_name.lower() for m in members]


def away(*members: TeamMember) -> None:
    TeamMember.objects.filter(pk__in=[m.pk for m in members]).update(availability=Availability.AWAY, away_until=None)


def test_the_chain_follows_managers_to_the_top(team):
    assert first_names(escalation_chain(team["liam"], at=NOW)) == ["aiko", "marco", "dana"]
    assert first_names(escalation_chain(team["ethan"], at=NOW)) == ["priya", "marco", "dana"]


def test_the_top_has_nobody_to_escalate_to(team):
    assert escalation_chain(team["dana"], at=NOW) == []


def test_an_away_manager_is_skipped_for_their_own_manager(team):
    away(team["aiko"])
    assert first_names(escalation_chain(team["liam"], at=NOW)) == ["marco", "dana"]


def test_an_inactive_manager_is_skipped(team):
    TeamMember.objects.filter(pk=team["marco"].pk).update(active=False)
    assert first_names(escalation_chain(team["liam"], at=NOW)) == ["aiko", "dana"]


def test_without_a_manager_the_chain_goes_to_the_next_role_up(team):
    TeamMember.objects.filter(pk=team["liam"].pk).update(manager=None)
    # Two leads: the lighter-loaded one is chosen.
    LocalTask.objects.create(title="busy", assignee=team["aiko"])
    assert first_names(escalation_chain(TeamMember.objects.get(pk=team["liam"].pk), at=NOW)) == [
        "priya",
        "marco",
        "dana",
    ]


def test_without_a_start_the_chain_begins_at_the_leads(team):
    LocalTask.objects.create(title="busy", assignee=team["priya"])
    assert first_names(escalation_chain(None, at=NOW)) == ["aiko", "marco", "dana"]


def test_a_loop_in_the_reporting_lines_ends_the_chain(team):
    # Written past the model's validation, as a bad migration or raw SQL could.
    TeamMember.objects.filter(pk=team["dana"].pk).update(manager=team["liam"])
    chain = escalation_chain(team["liam"], at=NOW)
    assert first_names(chain) == ["aiko", "marco", "dana"]


def test_an_away_top_ends_the_chain_below_it(team):
    away(team["dana"])
    assert first_names(escalation_chain(team["liam"], at=NOW)) == ["aiko", "marco"]


def test_approvers_are_found_by_role(team):
    assert first_names(find_approvers(Role.MANAGER, at=NOW)) == ["marco"]
    assert sorted(first_names(find_approvers(Role.LEAD, at=NOW))) == ["aiko", "priya"]


def test_approvers_are_ordered_by_workload(team):
    LocalTask.objects.create(title="busy", assignee=team["aiko"])
    assert first_names(find_approvers(Role.LEAD, at=NOW)) == ["priya", "aiko"]


def test_when_a_role_is_away_approval_goes_a_role_up(team):
    away(team["marco"])
    assert first_names(find_approvers(Role.MANAGER, at=NOW)) == ["dana"]


def test_no_reachable_approver_is_an_empty_list(team):
    away(team["dana"])
    assert find_approvers(Role.DIRECTOR, at=NOW) == []


def test_an_excluded_approver_is_not_asked(team):
    # The person who proposed an action does not approve it.
    assert first_names(find_approvers(Role.MANAGER, at=NOW, exclude=frozenset({team["marco"].pk}))) == ["dana"]


def test_chain_and_approver_queries_do_not_grow_with_the_team(team, django_assert_num_queries):
    with CaptureQueriesContext(connection) as chain_small:
        escalation_chain(team["liam"], at=NOW)
    with CaptureQueriesContext(connection) as approvers_small:
        find_approvers(Role.LEAD, at=NOW)
    extra = [member(f"Extra{n} Person", "lead", "marco", {"x": 1}, "UTC", "00:00-23:59") for n in range(25)]
    import_directory({"members": extra})
    with django_assert_num_queries(len(chain_small)):
        escalation_chain(team["liam"], at=NOW)
    with django_assert_num_queries(len(approvers_small)):
        assert len(find_approvers(Role.LEAD, at=NOW)) == 27
