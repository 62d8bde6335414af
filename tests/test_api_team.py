"""/api/v1/team/: the team directory, read only, for owners and team members."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from actions.models import Action, ActionStatus
from teams.models import Role, TeamMember
from tests.api_lists import assert_constant_queries, ids
from tests.api_people import client_for

URL = "/api/v1/team/"


@pytest.fixture
def team(world) -> dict[str, TeamMember]:
    """Marta (agent, billing) reports to Petra (lead)."""
    marta, petra = world.member.team_member, world.approver.team_member
    TeamMember.objects.filter(pk=marta.pk).update(manager=petra, skills={"billing": 4})
    marta.refresh_from_db()
    return {"marta": marta, "petra": petra}


@pytest.mark.parametrize("persona", ["owner", "member", "approver"])
def test_owners_and_team_members_see_the_whole_team(world, team, persona):
    assert ids(client_for(getattr(world, persona)).get(URL)) == {team["marta"].pk, team["petra"].pk}


def test_an_outsider_sees_no_team(world, team):
    client = client_for(world.outsider)
    assert ids(client.get(URL)) == set()
    assert client.get(f"{URL}{team['marta'].pk}/").status_code == 404


def test_a_member_shows_who_they_are_their_manager_skills_and_workload(world, team):
    Action.objects.filter(pk=world.member_action.pk).update(status=ActionStatus.QUEUED)
    body = client_for(world.member).get(f"{URL}{team['marta'].pk}/").json()
    assert (body["name"], body["email"], body["role"]) == ("Marta", "marta@acme.example", "agent")
    assert (body["manager"], body["manager_name"]) == (team["petra"].pk, "Petra")
    assert body["skills"] == {"billing": 4}
    assert body["active"] is True
    # Her one queued action is open work.
    assert body["workload"] == 1


def test_the_team_is_filtered_by_role_skill_and_name(world, team):
    owner = client_for(world.owner)
    assert ids(owner.get(URL, {"role": Role.LEAD})) == {team["petra"].pk}
    assert ids(owner.get(URL, {"skill": "billing"})) == {team["marta"].pk}
    assert ids(owner.get(URL, {"manager": team["petra"].pk})) == {team["marta"].pk}
    assert ids(owner.get(URL, {"search": "petra@"})) == {team["petra"].pk}
    assert ids(owner.get(URL, {"active": "false"})) == set()


def test_the_directory_cannot_be_changed_through_the_api(world, team):
    owner = client_for(world.owner)
    assert owner.patch(f"{URL}{team['marta'].pk}/", {"role": Role.DIRECTOR}).status_code == 405
    assert owner.post(URL, {"role": Role.DIRECTOR}).status_code == 405
    assert TeamMember.objects.get(pk=team["marta"].pk).role == Role.AGENT


def test_a_page_of_the_team_costs_the_same_whatever_its_size(world, team):
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"agent{n}", email=f"agent{n}@acme.example") for n in range(110)
    )
    TeamMember.objects.bulk_create(TeamMember(user=user, manager=team["petra"]) for user in users)
    assert_constant_queries(client_for(world.member), URL)
