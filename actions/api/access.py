"""Who may see and do what through the API: one place, used by every endpoint.

- An **owner** (a superuser, or a user given the model permission, e.g.
  `actions.view_action`) sees and acts on everything of that kind.
- An **approver** sees the approvals guardian lets them decide (object
  permission `approvals.decide_approval`), and those approvals' actions and
  emails.
- A **member** (a user with a TeamMember) sees the actions assigned to them
  or proposed by them, their emails, and the team directory.
- Anyone else (an outsider) sees nothing: lists are empty, objects 404, and
  every change is refused.

Views filter their querysets with these functions, so an object a user may
not see is "not found", never "forbidden" (its existence is not disclosed).
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from actions.models import Action, AuditEntry, Email, ProcessingRun
from approvals.decisions import PERMISSION as DECIDE
from approvals.models import Approval
from teams.models import TeamMember


def has_global(user, perm: str) -> bool:
    """Whether `user` holds `perm` for every object of its model (superusers hold them all)."""
    return bool(user and user.is_active and user.has_perm(perm))


def approvals_for(user) -> QuerySet[Approval]:
    """The approvals `user` may see: all with the view permission, else those they may decide."""
    approvals = Approval.objects.all()
    if has_global(user, "approvals.view_approval"):
        return approvals
    if not (user and user.is_active):
        return approvals.none()
    # Only the approvals this person was asked to decide; a global decide
    # permission must not widen that to every approval.
    return get_objects_for_user(user, DECIDE, klass=approvals, accept_global_perms=False)


def actions_for(user) -> QuerySet[Action]:
    """The actions `user` may see: all with the view permission, else those assigned to or proposed by them,
    and those they may decide."""
    actions = Action.objects.all()
    if has_global(user, "actions.view_action"):
        return actions
    if not (user and user.is_active):
        return actions.none()
    decidable = approvals_for(user).filter(action=OuterRef("pk"))
    return actions.filter(Q(assignee__user=user) | Q(created_by=user) | Exists(decidable))


def emails_for(user) -> QuerySet[Email]:
    """The emails `user` may see: all with the view permission, else those of the actions they may see."""
    emails = Email.objects.all()
    if has_global(user, "actions.view_email"):
        return emails
    if not (user and user.is_active):
        return emails.none()
    return emails.filter(Exists(actions_for(user).filter(email=OuterRef("pk"))))


def runs_for(user) -> QuerySet[ProcessingRun]:
    """The processing runs `user` may see: all with the view permission, else those of emails they may see."""
    runs = ProcessingRun.objects.all()
    if has_global(user, "actions.view_processingrun"):
        return runs
    if not (user and user.is_active):
        return runs.none()
    return runs.filter(Exists(emails_for(user).filter(pk=OuterRef("email_id"))))


def audit_for(user) -> QuerySet[AuditEntry]:
    """The audit trail: only for those with the view permission (it names everyone and everything)."""
    entries = AuditEntry.objects.all()
    return entries if has_global(user, "actions.view_auditentry") else entries.none()


def team_for(user) -> QuerySet[TeamMember]:
    """The team directory: for owners and for every active team member."""
    members = TeamMember.objects.all()
    if has_global(user, "teams.view_teammember"):
        return members
    if user and user.is_active and TeamMember.objects.filter(user=user, active=True).exists():
        return members
    return members.none()


def may_change_action(user, action: Action) -> bool:
    """Whether `user` may cancel, retry or undo `action`: owners, and the member it is assigned to."""
    if has_global(user, "actions.change_action"):
        return True
    return bool(user and user.is_active and action.assignee_id and action.assignee.user_id == user.pk)
