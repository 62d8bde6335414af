"""Ask every integration whether it answers, with the health checks the circuit breaker and /health/ use."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations import registry


class Command(BaseCommand):
    help = (
        "Check each integration (mail, mailbox, calendar, reminders, tasks, chat, files) with its configured "
        "backend's health check and print one line each. Exit code 0 when all answer, 1 when any does not."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "capability", nargs="*", choices=sorted(registry.FACTORIES), help="Only these (default: all)."
        )

    def handle(self, *args, capability: list[str], **options) -> None:
        names = capability or list(registry.FACTORIES)
        failing = []
        for name in names:
            result = registry.check(name)
            mark = self.style.SUCCESS("ok  ") if result.ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{mark} {name:<10} {result.backend or '-':<12} {result.detail}")
            if not result.ok:
                failing.append(name)
        if failing:
            raise CommandError(f"Not answering: {', '.join(failing)}.", returncode=1)
