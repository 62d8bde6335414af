"""The admin, Mailroom's main screen: mail and its review queue, actions, runs and the audit trail."""

from actions.admin import actions, audit, mail, runs

__all__ = ["actions", "audit", "mail", "runs"]
