"""The admin, Mailroom's main screen: mail and its review queue, actions, runs, the audit trail and the dashboard."""

from actions.admin import actions, audit, dashboard, mail, runs

__all__ = ["actions", "audit", "dashboard", "mail", "runs"]
