"""manage.py load_demo: the example team, approval policies and demo mail, for trying Mailroom out."""

from __future__ import annotations

from django.core.management.base import CommandError

from actions.demo import load_demo, load_demo_mail
from actions.demo_summary import ensure_admin, ensure_team_password
from actions.management.base import CANNOT_START, DONE, FAILED, ManualCommand


class Command(ManualCommand):
    help = (
        "Load demo data: the example team, default approval policies and a set of emails with proposed "
        "actions. Safe to run again: nothing already loaded is duplicated. With --admin, also make sure an "
        "'admin' superuser exists and print its login and the demo team's."
    )
    exit_codes = {
        DONE: "loaded",
        FAILED: "with --mail, some demo runs failed (their emails wait in the review queue)",
    }

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--admin", action="store_true", help="Create the 'admin' superuser if missing and print its login."
        )
        parser.add_argument(
            "--mail",
            type=int,
            default=0,
            metavar="N",
            help="Also generate N realistic demo emails and take them through the real pipeline "
            "(intake, analysis with the configured backend, routing), as if they had just arrived.",
        )

    def handle(self, *args, admin: bool = False, mail: int = 0, **options) -> None:
        if mail < 0:
            raise CommandError("--mail must be 0 or more.", returncode=CANNOT_START)
        counts = load_demo()
        self.stdout.write(
            f"Demo data: {counts['members']} team members, {counts['policies']} approval policies, "
            f"{counts['new_emails']} new emails."
        )
        failed = 0
        if mail:
            outcome = load_demo_mail(mail)
            failed = outcome["stored"] - outcome["succeeded"]
            self.stdout.write(
                f"Demo mail: {outcome['stored']} new messages analysed ({outcome['succeeded']} runs succeeded, "
                f"{outcome['review']} waiting in the review queue)."
            )
        if admin:
            self._print_logins()
        if failed:
            raise CommandError(f"{failed} demo run(s) failed; see the review queue.", returncode=FAILED)

    def _print_logins(self) -> None:
        password = ensure_admin()
        if password is None:
            self.stdout.write(
                "Admin login: user 'admin' (password changed since; reset it with: manage.py changepassword admin)"
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Admin login: user 'admin', password '{password}'"))
        self.stdout.write(
            f"Team members sign in to decide approvals with their email address and password "
            f"'{ensure_team_password()}' (approval requests with their links wait in the outbox, in the admin)."
        )
