"""manage.py load_demo: the example team, approval policies and demo mail, for trying Mailroom out."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from actions.demo import load_demo, load_demo_mail
from actions.management.base import CANNOT_START, DONE, FAILED, ManualCommand


class Command(ManualCommand):
    help = (
        "Load demo data: the example team, default approval policies and a set of emails with proposed "
        "actions. Safe to run again: nothing already loaded is duplicated. With --admin, also make sure an "
        "'admin' superuser exists and print its login."
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
            self._ensure_admin()
            self._ensure_team_password()
        if failed:
            raise CommandError(f"{failed} demo run(s) failed; see the review queue.", returncode=FAILED)

    def _ensure_admin(self) -> None:
        # The demo password is kept in the data folder (outside git) so that
        # running the quickstart again can print it again.
        password_file = settings.DATA_DIR / "demo_admin_password"
        User = get_user_model()
        user = User.objects.filter(username="admin").first()
        if user is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@acme.example", password)
            password_file.write_text(password)
            password_file.chmod(0o600)
        elif password_file.exists() and user.check_password(password_file.read_text()):
            password = password_file.read_text()
        else:
            self.stdout.write(
                "Admin login: user 'admin' (password changed since; reset it with: manage.py changepassword admin)"
            )
            return
        self.stdout.write(self.style.SUCCESS(f"Admin login: user 'admin', password '{password}'"))

    def _ensure_team_password(self) -> None:
        # Approvers follow emailed links and sign in; demo members share one
        # password, kept beside the admin's so it can be printed again.
        password_file = settings.DATA_DIR / "demo_team_password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(9))
            password_file.chmod(0o600)
        password = password_file.read_text()
        users = get_user_model().objects.filter(team_member__isnull=False)
        for user in users:
            if not user.has_usable_password():
                user.set_password(password)
                user.save(update_fields=["password"])
        self.stdout.write(
            f"Team members sign in to decide approvals with their email address and password '{password}' "
            "(approval links are printed with the mail on the console)."
        )
