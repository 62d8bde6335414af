"""Who should take a piece of work: ranking members by skill, workload, availability and working hours.

The rules, in the order they apply (README, "How assignment decides"):

1. Only active members are considered. A member away on the day of the work
   is never picked.
2. Normal work goes only to members inside their working hours (in their own
   time zone, on one of their working days) and below their capacity. Urgent
   work may go outside working hours and above capacity, with a lower score.
3. When skills are needed, a member with none of them is not eligible.
   Eligible members are ranked by a weighted score; the weights make any
   skill match outrank any idle member without the skill.
4. When nobody is eligible, the outcome says so and falls back to the
   best-placed lead (or anyone above), else to the unassigned queue.
"""

from __future__ import annotations

import dataclasses
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from actions.models import Action, ActionStatus, Priority
from integrations.models import LocalTask, TaskStatus
from teams.models import ROLE_RANK, Availability, Role, TeamMember

# Actions that will still give their assignee work: decided or on the way, not finished.
OPEN_ACTION_STATUSES = [
    ActionStatus.PENDING_APPROVAL,
    ActionStatus.APPROVED,
    ActionStatus.QUEUED,
    ActionStatus.RUNNING,
    ActionStatus.FAILED,
]

# How much each factor counts. Skill coverage outweighs all the others
# together, so a member with the skill always ranks above one without it.
WEIGHTS = {"skills": 0.55, "level": 0.10, "workload": 0.15, "availability": 0.10, "hours": 0.10}
_BUSY_SCORE = 0.5


@dataclass(frozen=True)
class Need:
    """What a piece of work asks of its assignee."""

    skills: dict[str, int] = field(default_factory=dict)  # skill -> minimum level (1 if any level will do)
    priority: int = Priority.NORMAL
    at: datetime | None = None  # when the work is to be done; now if None
    min_role: str | None = None
    exclude: frozenset[int] = frozenset()  # member ids that must not be picked (e.g. the current assignee)

    @classmethod
    def from_params(cls, params: dict, *, priority: int = Priority.NORMAL, at: datetime | None = None) -> Need:
        """Read required skills from action parameters: a list of names, or an object of name to level."""
        raw = params.get("skills") or {}
        if isinstance(raw, str):
            raw = [raw]
        if isinstance(raw, list):
            skills = {str(name): 1 for name in raw}
        elif isinstance(raw, dict):
            skills = {str(name): _level(level) for name, level in raw.items()}
        else:
            skills = {}
        return cls(skills=skills, priority=priority, at=at)

    @property
    def urgent(self) -> bool:
        return self.priority >= Priority.URGENT


# The action types whose work goes to a member chosen by ranking.
RANKED_ACTION_TYPES = frozenset({"create_task", "delegate_task"})


def need_for_action(action: Action) -> Need:
    """The need an action expresses: skills from its parameters, its priority, its scheduled time."""
    exclude = frozenset({action.assignee_id}) if action.type == "delegate_task" and action.assignee_id else frozenset()
    need = Need.from_params(action.params, priority=action.priority, at=action.scheduled_for)
    return dataclasses.replace(need, exclude=exclude)


def _level(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5 else 1


@dataclass
class Candidate:
    """One member's place in a ranking, with the score of each factor and the reasons in words."""

    member: TeamMember
    score: float
    scores: dict[str, float]
    reasons: list[str]
    eligible: bool
    open_work: int

    def as_dict(self) -> dict:
        return {
            "member_id": self.member.pk,
            "name": str(self.member),
            "email": self.member.user.email,
            "score": round(self.score, 3),
            "scores": {name: round(value, 3) for name, value in self.scores.items()},
            "eligible": self.eligible,
            "open_work": self.open_work,
            "reasons": self.reasons,
        }


@dataclass
class Assignment:
    """The outcome of choosing an assignee: a member, or why there is none."""

    member: TeamMember | None
    outcome: str  # "matched", "fallback_lead" or "unassigned"
    explanation: str
    ranking: list[Candidate]


def with_workload(queryset: QuerySet[TeamMember] | None = None) -> QuerySet[TeamMember]:
    """Members annotated with `open_work`: open actions and open local tasks assigned to them.

    Counted from those rows every time, never stored, so it cannot drift.
    """
    queryset = TeamMember.objects.all() if queryset is None else queryset
    open_actions = (
        Action.objects.filter(assignee=OuterRef("pk"), status__in=OPEN_ACTION_STATUSES)
        .order_by()
        .values("assignee")
        .annotate(total=Count("pk"))
        .values("total")
    )
    open_tasks = (
        LocalTask.objects.filter(assignee=OuterRef("pk"), status=TaskStatus.OPEN)
        .order_by()
        .values("assignee")
        .annotate(total=Count("pk"))
        .values("total")
    )
    zero = Value(0, output_field=IntegerField())
    return queryset.annotate(
        open_work=Coalesce(Subquery(open_actions, output_field=IntegerField()), zero)
        + Coalesce(Subquery(open_tasks, output_field=IntegerField()), zero)
    )


def is_away(member: TeamMember, at: datetime) -> bool:
    """Away on the day of `at` in their own time zone (away_until is their first day back)."""
    if member.availability != Availability.AWAY:
        return False
    if member.away_until is None:
        return True
    return at.astimezone(zoneinfo.ZoneInfo(member.timezone)).date() < member.away_until


def in_working_hours(member: TeamMember, at: datetime) -> bool:
    """Whether `at` falls in the member's working hours, in their time zone, on a working day.

    Hours that end before they start run overnight; the shift belongs to the
    day it starts on.
    """
    local = at.astimezone(zoneinfo.ZoneInfo(member.timezone))
    now, start, end = local.time(), member.work_start, member.work_end
    if start < end:
        return start <= now < end and local.weekday() in member.work_days
    if now >= start:
        return local.weekday() in member.work_days
    if now < end:
        return (local - timedelta(days=1)).weekday() in member.work_days
    return False


def _skill_scores(member: TeamMember, need: Need) -> tuple[float, float, list[str]]:
    if not need.skills:
        return 1.0, 1.0, ["no particular skill needed"]
    covered, level_fit, reasons = 0.0, 0.0, []
    for skill, minimum in need.skills.items():
        level = member.skills.get(skill, 0)
        if level >= minimum:
            covered += 1
            reasons.append(f"{skill} level {level}")
        elif level:
            covered += level / minimum
            reasons.append(f"{skill} level {level}, below the {minimum} needed")
        else:
            reasons.append(f"no {skill}")
        level_fit += level / 5
    count = len(need.skills)
    return covered / count, level_fit / count, reasons


def rank_member(member: TeamMember, need: Need, at: datetime) -> Candidate:
    """Score one member (annotated with open_work) for `need` at `at`."""
    open_work = getattr(member, "open_work", 0)
    skills, level, reasons = _skill_scores(member, need)
    eligible = True

    if is_away(member, at):
        eligible = False
        until = f" until {member.away_until:%Y-%m-%d}" if member.away_until else ""
        reasons.append(f"away{until}")
    availability = {Availability.AVAILABLE: 1.0, Availability.BUSY: _BUSY_SCORE}.get(member.availability, 0.0)
    if member.availability == Availability.BUSY:
        reasons.append("busy")

    workload = max(0.0, 1 - open_work / member.capacity) if member.capacity else 0.0
    reasons.append(f"{open_work} open of {member.capacity}")
    if open_work >= member.capacity:
        if need.urgent:
            reasons.append("at capacity, but the work is urgent")
        else:
            eligible = False
            reasons.append("at capacity")

    if in_working_hours(member, at):
        hours = 1.0
        reasons.append("in working hours")
    else:
        hours = 0.0
        local = at.astimezone(zoneinfo.ZoneInfo(member.timezone))
        if need.urgent:
            reasons.append(f"outside working hours ({local:%a %H:%M} local), but the work is urgent")
        else:
            eligible = False
            reasons.append(f"outside working hours ({local:%a %H:%M} local)")

    if need.skills and skills == 0:
        eligible = False
    if need.min_role and ROLE_RANK[member.role] < ROLE_RANK[need.min_role]:
        eligible = False
        reasons.append(f"role {member.role} is below {need.min_role}")
    if member.pk in need.exclude:
        eligible = False
        reasons.append("excluded")

    scores = {"skills": skills, "level": level, "workload": workload, "availability": availability, "hours": hours}
    total = sum(WEIGHTS[name] * value for name, value in scores.items())
    return Candidate(member, total, scores, reasons, eligible, open_work)


def suggest_assignees(need: Need, *, members: QuerySet[TeamMember] | None = None) -> list[Candidate]:
    """Rank the active members for `need`: eligible ones first, best score first, with reasons.

    Costs one query whatever the size of the team.
    """
    at = need.at or timezone.now()
    queryset = with_workload(members if members is not None else TeamMember.objects.all())
    candidates = [rank_member(member, need, at) for member in queryset.filter(active=True).select_related("user")]
    # Ties go to the lighter load, then to a stable order by id.
    candidates.sort(key=lambda c: (not c.eligible, -round(c.score, 6), c.open_work, c.member.pk))
    return candidates


def choose_assignee(need: Need, *, members: QuerySet[TeamMember] | None = None) -> Assignment:
    """Pick one member for `need`, or say clearly why nobody fits. Never raises for want of a member."""
    # One moment for the ranking and the fallback alike.
    at = need.at or timezone.now()
    need = dataclasses.replace(need, at=at)
    ranking = suggest_assignees(need, members=members)
    if ranking and ranking[0].eligible:
        best = ranking[0]
        return Assignment(best.member, "matched", f"{best.member}: {'; '.join(best.reasons)}", ranking)
    leads = [
        c
        for c in ranking
        if ROLE_RANK[c.member.role] >= ROLE_RANK[Role.LEAD]
        and not is_away(c.member, at)
        and c.member.pk not in need.exclude
    ]
    if leads:
        # The lead best placed for the work, even out of hours or over capacity.
        lead = min(leads, key=lambda c: (ROLE_RANK[c.member.role], -c.score, c.open_work, c.member.pk))
        return Assignment(
            lead.member,
            "fallback_lead",
            f"Nobody fits ({_why_nobody(ranking)}); falling back to {lead.member} ({lead.member.role}).",
            ranking,
        )
    return Assignment(
        None, "unassigned", f"Nobody fits ({_why_nobody(ranking)}); left in the unassigned queue.", ranking
    )


def _why_nobody(ranking: list[Candidate]) -> str:
    if not ranking:
        return "no active members"
    return f"none of {len(ranking)} active members is free, in hours and below capacity"
