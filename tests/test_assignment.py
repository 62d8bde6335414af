"""Assignment on a team of twelve, with expectations worked out by hand.

The reference moment is Wednesday 2026-11-18 10:00 UTC. Local times then:
Dublin, London, Accra 10:00; Madrid, Rome, Berlin 11:00; Kolkata 15:30;
Tokyo 19:00 (just past Aiko's 10-19); Sydney 21:00; New York 05:00; Los
Angeles 02:00.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from actions.models import Action, ActionStatus, ActionType, Priority
from actions.transitions import transition_action
from integrations.models import LocalTask, TaskStatus
from teams.assignment import (
    Need,
    choose_assignee,
    in_working_hours,
    is_away,
    need_for_action,
    suggest_assignees,
    with_workload,
)
from teams.directory import import_directory
from teams.models import Availability, TeamMember
from tests.team_data import TEAM, member

WEDNESDAY_10_UTC = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


@pytest.fixture
def team(db) -> dict[str, TeamMember]:
    import_directory({"members": TEAM})
    members = {m.user.first_name.lower(): m for m in TeamMember.objects.select_related("user")}
    # Kofi is at his capacity of 2; Marco has 3 of 8.
    for name, count in [("kofi", 2), ("marco", 3)]:
        for n in range(count):
            LocalTask.objects.create(title=f"{name} task {n}", assignee=members[name])
    return members


def names(ranking, *, eligible_only: bool = True) -> list[str]:
    return [c.member.user.first_name.lower() for c in ranking if c.eligible or not eligible_only]


def candidate(ranking, name: str):
    return next(c for c in ranking if c.member.user.first_name.lower() == name)


# --- Ranking -------------------------------------------------------------------


def test_billing_goes_to_the_idle_specialist_then_the_lower_level_then_the_busier_manager(team):
    ranking = suggest_assignees(Need(skills={"billing": 1}, at=WEDNESDAY_10_UTC))
    # Liam: skills 1, level .8, workload 1 -> .98; Olivia: level .4 -> .94; Marco: 3 of 8 open -> .92375.
    assert names(ranking) == ["liam", "olivia", "marco"]
    assert candidate(ranking, "liam").score == pytest.approx(0.98)
    assert candidate(ranking, "olivia").score == pytest.approx(0.94)
    assert candidate(ranking, "marco").score == pytest.approx(0.92375)
    assert candidate(ranking, "marco").scores["workload"] == pytest.approx(0.625)


def test_a_member_at_capacity_is_not_given_normal_work(team):
    ranking = suggest_assignees(Need(skills={"billing": 1}, at=WEDNESDAY_10_UTC))
    kofi = candidate(ranking, "kofi")
    assert not kofi.eligible
    assert "at capacity" in kofi.reasons
    assert kofi.open_work == 2


def test_urgent_work_may_go_to_a_member_at_capacity(team):
    # The other billing people are away: Kofi, full, is the only one left.
    TeamMember.objects.filter(pk__in=[team[n].pk for n in ("liam", "olivia", "marco")]).update(
        availability=Availability.AWAY, away_until=None
    )
    normal = choose_assignee(Need(skills={"billing": 1}, at=WEDNESDAY_10_UTC))
    assert normal.outcome == "fallback_lead"
    urgent = choose_assignee(Need(skills={"billing": 1}, priority=Priority.URGENT, at=WEDNESDAY_10_UTC))
    assert (urgent.outcome, urgent.member) == ("matched", team["kofi"])
    assert "at capacity, but the work is urgent" in candidate(urgent.ranking, "kofi").reasons


def test_a_near_match_that_is_free_outranks_an_exact_match_that_is_full_for_urgent_work(team):
    # Kofi alone meets billing 5 but holds 2 of 2; Liam (billing 4, idle) covers 4/5 of it.
    ranking = suggest_assignees(Need(skills={"billing": 5}, priority=Priority.URGENT, at=WEDNESDAY_10_UTC))
    assert names(ranking)[:2] == ["liam", "kofi"]
    assert candidate(ranking, "liam").scores["skills"] == pytest.approx(0.8)
    assert "billing level 4, below the 5 needed" in candidate(ranking, "liam").reasons


def test_inactive_members_are_never_ranked(team):
    ranking = suggest_assignees(Need(skills={"billing": 1}, at=WEDNESDAY_10_UTC))
    assert "lucas" not in names(ranking, eligible_only=False)
    assert len(ranking) == 11


def test_a_skill_match_beats_an_idle_member_without_the_skill(team):
    for _ in range(8):
        LocalTask.objects.create(title="busy", assignee=team["sofia"])
    ranking = suggest_assignees(Need(skills={"spanish": 1}, at=WEDNESDAY_10_UTC))
    sofia = candidate(ranking, "sofia")
    # Busy and 8 of 10 loaded, but the only Spanish speaker.
    assert names(ranking) == ["sofia"]
    idle_without = candidate(ranking, "liam")
    assert idle_without.scores["workload"] == 1.0 and idle_without.scores["skills"] == 0
    assert all(sofia.score > c.score for c in ranking if c is not sofia)


def test_an_away_member_is_never_picked_even_for_urgent_work(team):
    need = Need(skills={"incident-response": 4}, priority=Priority.URGENT, at=WEDNESDAY_10_UTC)
    choice = choose_assignee(need)
    # Noah has the skill but is away; Aiko (level 5) is out of hours, which urgent work allows.
    assert choice.member == team["aiko"]
    assert choice.outcome == "matched"
    noah = candidate(choice.ranking, "noah")
    assert not noah.eligible
    assert "away until 2026-12-01" in noah.reasons


def test_an_away_member_is_back_on_the_first_day_of_return(team):
    noah = team["noah"]
    assert is_away(noah, datetime(2026, 11, 30, 22, 59, tzinfo=UTC))  # 23:59 in Berlin, still away
    assert not is_away(noah, datetime(2026, 11, 30, 23, 0, tzinfo=UTC))  # midnight in Berlin: back


def test_normal_work_does_not_go_outside_working_hours(team):
    choice = choose_assignee(Need(skills={"scheduling": 1}, at=WEDNESDAY_10_UTC))
    ethan = candidate(choice.ranking, "ethan")
    assert not ethan.eligible
    assert "outside working hours (Wed 02:00 local)" in ethan.reasons
    # Nobody else schedules: fall back to the lead best placed now (Priya, in hours; Aiko is not).
    assert (choice.outcome, choice.member) == ("fallback_lead", team["priya"])
    assert "Nobody fits" in choice.explanation


def test_urgent_work_may_go_outside_working_hours(team):
    choice = choose_assignee(Need(skills={"scheduling": 1}, priority=Priority.URGENT, at=WEDNESDAY_10_UTC))
    assert (choice.outcome, choice.member) == ("matched", team["ethan"])


def test_with_no_skills_needed_the_least_loaded_member_in_hours_wins(team):
    ranking = suggest_assignees(Need(at=WEDNESDAY_10_UTC))
    # In hours and idle: Priya, Liam, Olivia (Sofia is busy, Marco loaded, Kofi full).
    top = names(ranking)[:3]
    assert sorted(top) == ["liam", "olivia", "priya"]
    assert names(ranking)[3:] == ["sofia", "marco"]


def test_nobody_at_all_is_a_clear_outcome_not_an_exception(db):
    choice = choose_assignee(Need(skills={"billing": 1}, at=WEDNESDAY_10_UTC))
    assert (choice.member, choice.outcome, choice.ranking) == (None, "unassigned", [])
    assert "no active members" in choice.explanation


def test_nobody_fits_and_no_lead_leaves_the_work_unassigned(team):
    TeamMember.objects.exclude(role="agent").update(availability=Availability.AWAY, away_until=None)
    choice = choose_assignee(Need(skills={"scheduling": 1}, at=WEDNESDAY_10_UTC))
    assert choice.member is None
    assert choice.outcome == "unassigned"


# --- Working hours around midnight and DST --------------------------------------


@pytest.mark.parametrize(
    "utc,inside,why",
    [
        (datetime(2026, 11, 17, 12, 30, tzinfo=UTC), True, "Tue 23:30 in Sydney, in the Tuesday night shift"),
        (datetime(2026, 11, 17, 19, 30, tzinfo=UTC), False, "Wed 06:30 in Sydney, the shift ended at 06:00"),
        (datetime(2026, 11, 17, 18, 59, tzinfo=UTC), True, "Wed 05:59 in Sydney, still Tuesday's shift"),
        (datetime(2026, 11, 20, 18, 0, tzinfo=UTC), True, "Sat 05:00 in Sydney, Friday's shift runs past midnight"),
        (datetime(2026, 11, 21, 12, 0, tzinfo=UTC), False, "Sat 23:00 in Sydney, no shift starts on Saturday"),
        (datetime(2026, 11, 22, 18, 0, tzinfo=UTC), False, "Mon 05:00 in Sydney, no shift started on Sunday"),
    ],
)
def test_an_overnight_shift_belongs_to_the_day_it_starts(team, utc, inside, why):
    assert in_working_hours(team["mei"], utc) is inside, why


@pytest.mark.parametrize(
    "utc,inside,why",
    [
        (datetime(2026, 10, 30, 13, 30, tzinfo=UTC), True, "Fri 09:30 EDT, before New York's clocks went back"),
        (datetime(2026, 11, 2, 13, 30, tzinfo=UTC), False, "Mon 08:30 EST: the same UTC time is now before 09:00"),
        (datetime(2026, 11, 2, 14, 0, tzinfo=UTC), True, "Mon 09:00 EST"),
        (datetime(2026, 3, 6, 13, 30, tzinfo=UTC), False, "Fri 08:30 EST, before the clocks went forward"),
        (datetime(2026, 3, 9, 13, 30, tzinfo=UTC), True, "Mon 09:30 EDT after the change on 8 March"),
        (datetime(2026, 11, 2, 21, 59, tzinfo=UTC), True, "Mon 16:59 EST"),
        (datetime(2026, 11, 2, 22, 0, tzinfo=UTC), False, "Mon 17:00 EST: the end is not included"),
    ],
)
def test_working_hours_follow_daylight_saving_time(team, utc, inside, why):
    assert in_working_hours(team["dana"], utc) is inside, why


def test_the_ranking_changes_with_new_yorks_clock_change(team):
    need = Need(skills={"finance": 1}, at=datetime(2026, 11, 2, 13, 30, tzinfo=UTC))
    # 08:30 in New York: Dana is out, Priya (19:00 in Kolkata) is out too.
    assert names(suggest_assignees(need)) == []
    need = Need(skills={"finance": 1}, at=datetime(2026, 10, 30, 13, 30, tzinfo=UTC))
    # 09:30 EDT: Dana is in; Priya's 19:00 is still after hours.
    assert names(suggest_assignees(need)) == ["dana"]


# --- Workload ------------------------------------------------------------------


def test_workload_counts_open_actions_and_open_tasks_only(team, make_action):
    liam = team["liam"]
    open_action = make_action("create_task")
    open_action.assignee = liam
    open_action.save(update_fields=["assignee"])
    transition_action(open_action, ActionStatus.PENDING_APPROVAL, actor="test")
    finished = make_action("create_task")
    finished.assignee = liam
    finished.save(update_fields=["assignee"])
    transition_action(finished, ActionStatus.CANCELLED, actor="test")
    suggestion = make_action("create_task")
    suggestion.assignee = liam
    suggestion.save(update_fields=["assignee"])  # proposed: only a suggestion, not work yet
    LocalTask.objects.create(title="open", assignee=liam)
    LocalTask.objects.create(title="done", assignee=liam, status=TaskStatus.DONE)

    assert with_workload().get(pk=liam.pk).open_work == 2


def test_ranking_costs_one_query_whatever_the_team_size(team, django_assert_num_queries):
    need = Need(skills={"billing": 1}, at=WEDNESDAY_10_UTC)
    with CaptureQueriesContext(connection) as small:
        suggest_assignees(need)
    import_directory(
        {
            "members": [
                member(f"Extra{n} Person", "agent", "aiko", {"billing": 3}, "Europe/Dublin", "09:00-17:00")
                for n in range(30)
            ]
        }
    )
    for extra in TeamMember.objects.filter(user__first_name__startswith="Extra")[:10]:
        LocalTask.objects.create(title="t", assignee=extra)
    with django_assert_num_queries(len(small)):
        ranking = suggest_assignees(need)
    assert len(ranking) == 41
    assert len(small) == 1


# --- Needs from actions ----------------------------------------------------------


@pytest.mark.parametrize(
    "params,skills",
    [
        ({"skills": ["billing", "spanish"]}, {"billing": 1, "spanish": 1}),
        ({"skills": {"billing": 4}}, {"billing": 4}),
        ({"skills": "billing"}, {"billing": 1}),
        ({"skills": {"billing": 9}}, {"billing": 1}),
        ({"skills": 42}, {}),
        ({}, {}),
    ],
)
def test_a_need_reads_skills_from_parameters(params, skills):
    assert Need.from_params(params).skills == skills


def test_a_delegation_never_goes_back_to_the_current_assignee(team, make_action):
    action = make_action(ActionType.DELEGATE_TASK, params={"skills": ["billing"]})
    action.assignee = team["liam"]
    action.scheduled_for = WEDNESDAY_10_UTC
    need = need_for_action(action)
    assert need.exclude == frozenset({team["liam"].pk})
    choice = choose_assignee(need)
    assert choice.member == team["olivia"]
    assert "excluded" in candidate(choice.ranking, "liam").reasons


# --- The admin ---------------------------------------------------------------------


def test_the_action_page_shows_the_ranking_with_its_reasons(client, alice, team, make_action):
    action = make_action(ActionType.CREATE_TASK, params={"title": "Refund", "skills": ["billing"]})
    Action.objects.filter(pk=action.pk).update(scheduled_for=WEDNESDAY_10_UTC)
    client.force_login(alice)
    page = client.get(reverse("admin:actions_action_change", args=[action.pk])).content.decode()
    assert "Liam OBrien: billing level 4" in page  # the choice, explained
    assert "skills 1.00, level 0.80, workload 1.00, availability 1.00, hours 1.00" in page
    assert "2 open of 2; at capacity" in page  # Kofi, listed but not eligible


def test_the_action_page_shows_the_escalation_chain(client, alice, team, make_action):
    action = make_action(ActionType.ESCALATE_ISSUE, params={"reason": "outage"})
    Action.objects.filter(pk=action.pk).update(assignee=team["liam"])
    client.force_login(alice)
    page = client.get(reverse("admin:actions_action_change", args=[action.pk])).content.decode()
    assert "Aiko Tanaka (Lead) → Marco Rossi (Manager) → Dana Whitfield (Director)" in page
