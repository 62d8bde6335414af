from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ActionsConfig(AppConfig):
    name = "actions"
    verbose_name = "Mail and actions"

    def ready(self) -> None:
        from config.schedules import register_schedules

        # post_migrate runs once every app's tables exist, django_q's included.
        post_migrate.connect(register_schedules, sender=self, dispatch_uid="mailroom.register_schedules")
