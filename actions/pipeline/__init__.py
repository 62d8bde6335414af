"""The pipeline after intake: analysis, proposal, policy, hand-over and notification, one run per email."""

from actions.pipeline.control import (
    RunControlError,
    cancel_run,
    pause_run,
    recover_runs,
    reprocess_email,
    resume_run,
)
from actions.pipeline.runs import facts_for, process_run, process_runs

__all__ = [
    "RunControlError",
    "cancel_run",
    "facts_for",
    "pause_run",
    "process_run",
    "process_runs",
    "recover_runs",
    "reprocess_email",
    "resume_run",
]
