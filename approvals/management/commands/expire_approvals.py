from django.core.management.base import BaseCommand

from approvals.expiry import expire_overdue_approvals


class Command(BaseCommand):
    help = (
        "Expire pending approvals whose deadline has passed, and their actions. "
        "The worker also runs this every 5 minutes; run it by hand to catch up at once."
    )

    def handle(self, *args, **options) -> None:
        count = expire_overdue_approvals()
        self.stdout.write(f"Expired {count} approval{'s' if count != 1 else ''}.")
