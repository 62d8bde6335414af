from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("actions", "0004_intake"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReviewItem",
            fields=[],
            options={
                "verbose_name": "message to review",
                "verbose_name_plural": "review queue",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("actions.email",),
        ),
    ]
