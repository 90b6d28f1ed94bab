"""Retention: ``Message.purged_at`` and the partial index the purge searches by.

The index is built with CREATE INDEX CONCURRENTLY, which cannot run inside a
transaction, hence a non-atomic migration: on a large message table the build must
not block the chat. Adding a nullable column without a default is instant.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("chat", "0008_question_guard"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="purged_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the retention policy removed its text (usage figures are kept).",
                null=True,
            ),
        ),
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(
                condition=models.Q(("purged_at__isnull", True)),
                fields=["created_at"],
                name="chat_message_unpurged",
            ),
        ),
    ]
