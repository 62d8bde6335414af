"""Inbound mail, the actions proposed from it, their processing runs and the audit trail."""

from actions.models.action import Action, ActionSource, ActionStatus, ActionType, Priority
from actions.models.audit import AuditEntry
from actions.models.email import Attachment, Automated, Email, EmailSource, EmailStatus, ReviewItem
from actions.models.execution import DomainSend, ExecutionSwitch
from actions.models.run import ProcessingRun, RunStatus, RunStep, StepName

__all__ = [
    "Action",
    "ActionSource",
    "ActionStatus",
    "ActionType",
    "Attachment",
    "AuditEntry",
    "Automated",
    "DomainSend",
    "Email",
    "EmailSource",
    "EmailStatus",
    "ExecutionSwitch",
    "Priority",
    "ProcessingRun",
    "ReviewItem",
    "RunStatus",
    "RunStep",
    "StepName",
]
