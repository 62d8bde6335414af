"""The API's personas and a small world for them, shared by every API suite.

- owner: alice, a superuser: sees and does everything.
- approver: petra, asked to decide one approval (guardian object permission).
- member: marta, a team member with one action assigned to her.
- outsider: charlie, a user with no access at all: sees nothing, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from guardian.shortcuts import assign_perm
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from actions.models import Action, Email
from approvals.decisions import PERMISSION
from approvals.models import Approval
from teams.models import TeamMember


@dataclass
class World:
    """Who is who, and the objects each of them may see."""

    owner: object
    approver: object
    member: object
    outsider: object
    member_email: Email  # the email of the member's action
    member_action: Action  # assigned to the member
    approval_email: Email
    approval_action: Action  # waiting for the approver
    approval: Approval
    other_email: Email  # nobody but the owner sees it
    other_action: Action


def client_for(user) -> APIClient:
    """An API client signed in with `user`'s token (none for an anonymous client)."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def world(alice, charlie, make_email, make_action) -> World:
    users = get_user_model().objects
    petra = users.create_user("petra", "petra@acme.example", "petra-password", first_name="Petra")
    marta = users.create_user("marta", "marta@acme.example", "marta-password", first_name="Marta")
    member = TeamMember.objects.create(user=marta)
    TeamMember.objects.create(user=petra, role="lead")

    member_email = make_email(subject="For Marta")
    member_action = make_action("create_task", email=member_email)
    Action.objects.filter(pk=member_action.pk).update(assignee=member)
    member_action.refresh_from_db()

    approval_email = make_email(subject="Needs Petra")
    approval_action = make_action("send_reply", email=approval_email)
    approval = Approval.objects.create(action=approval_action, expires_at=timezone.now() + timedelta(days=2))
    assign_perm(PERMISSION, petra, approval)

    other_email = make_email(subject="Nobody else's business")
    other_action = make_action("archive_email", email=other_email)
    return World(
        owner=alice,
        approver=petra,
        member=marta,
        outsider=charlie,
        member_email=member_email,
        member_action=member_action,
        approval_email=approval_email,
        approval_action=approval_action,
        approval=approval,
        other_email=other_email,
        other_action=other_action,
    )
