"""manage.py demo_summary: where to look once the demo runs, with the logins and an approval link to follow."""

from __future__ import annotations

from django.conf import settings

from actions.demo_summary import summary
from actions.management.base import DONE, ManualCommand


class Command(ManualCommand):
    help = (
        "Print the demo's addresses (dashboard, admin, outbox, API docs, health) under SITE_URL, the admin's "
        "login, and the link of an approval request waiting in the outbox with its approver's login. "
        "./scripts/start prints it once the web server answers."
    )
    exit_codes = {DONE: "printed (it says so when no approval request is waiting)"}

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--every", type=float, default=0, metavar="SECONDS", help="Say that demo mail arrives this often."
        )
        parser.add_argument("--logs", default="", metavar="FOLDER", help="Say where the processes' logs are.")

    def handle(self, *args, every: float, logs: str, **options) -> None:
        self.stdout.write(summary(settings.SITE_URL, every=every, logs=logs))
