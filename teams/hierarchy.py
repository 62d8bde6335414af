"""Who is above whom: approvers by role, and the escalation chain up to the top."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from teams.assignment import in_working_hours, is_away, with_workload
from teams.models import ROLE_RANK, Role, TeamMember


def _reachable(members, at: datetime) -> list[TeamMember]:
    return [member for member in members if member.active and not is_away(member, at)]


def find_approvers(role: str, *, at: datetime | None = None, exclude: frozenset[int] = frozenset()) -> list[TeamMember]:
    """Members who can approve at `role`: that role, or the next role up if nobody in it is reachable.

    Ordered by open workload, lightest first. Empty only when nobody at or
    above the role is reachable.
    """
    at = at or timezone.now()
    members = with_workload(TeamMember.objects.filter(active=True).select_related("user"))
    ranked = sorted(_reachable(members, at), key=lambda m: (m.open_work, m.pk))
    ranked = [member for member in ranked if member.pk not in exclude]
    for rank in sorted({r for r in ROLE_RANK.values() if r >= ROLE_RANK[role]}):
        found = [member for member in ranked if ROLE_RANK[member.role] == rank]
        if found:
            return found
    return []


def on_duty(*, at: datetime | None = None) -> list[TeamMember]:
    """Who is working now: active, not away, inside their working hours.

    When nobody is, the leads (or the next role up) who are not away, so an
    urgent message at night still reaches someone.
    """
    at = at or timezone.now()
    members = _reachable(TeamMember.objects.filter(active=True).select_related("user").order_by("pk"), at)
    working = [member for member in members if in_working_hours(member, at)]
    return working or find_approvers(Role.LEAD, at=at)


def escalation_chain(start: TeamMember | None, *, at: datetime | None = None) -> list[TeamMember]:
    """The people an issue goes to, in order, from `start` up to the top.

    Each step is the current member's manager; where there is none (or they are
    away or inactive, in which case their own manager is tried), the step is the
    lightest-loaded reachable member of the next role up. Without a `start`,
    the chain begins at the leads. Loops in the reporting lines end the chain
    instead of running forever.
    """
    at = at or timezone.now()
    members = list(with_workload(TeamMember.objects.select_related("user")))
    by_id = {member.pk: member for member in members}
    reachable = _reachable(members, at)
    chain: list[TeamMember] = []
    seen: set[int] = {start.pk} if start else set()
    current_rank = ROLE_RANK[start.role] if start else ROLE_RANK[Role.AGENT]
    current = by_id.get(start.pk) if start else None

    while True:
        step = _next_up(current, current_rank, by_id, reachable, seen, at)
        if step is None:
            return chain
        chain.append(step)
        seen.add(step.pk)
        current, current_rank = step, max(current_rank, ROLE_RANK[step.role])


def _next_up(current, current_rank, by_id, reachable, seen, at) -> TeamMember | None:
    manager = by_id.get(current.manager_id) if current and current.manager_id else None
    # Up the reporting line, past anyone away or inactive.
    while manager is not None and manager.pk not in seen:
        if manager.active and not is_away(manager, at):
            return manager
        seen = seen | {manager.pk}
        manager = by_id.get(manager.manager_id) if manager.manager_id else None
    # No manager to go to: the next role up.
    above = [m for m in reachable if ROLE_RANK[m.role] > current_rank and m.pk not in seen]
    if not above:
        return None
    lowest = min(ROLE_RANK[m.role] for m in above)
    return min((m for m in above if ROLE_RANK[m.role] == lowest), key=lambda m: (m.open_work, m.pk))
