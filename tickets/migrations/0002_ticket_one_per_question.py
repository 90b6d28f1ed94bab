from django.db import migrations, models


class Migration(migrations.Migration):
    """One ticket per question message (opening again returns it)."""

    dependencies = [("tickets", "0001_initial")]

    operations = [
        migrations.AddConstraint(
            model_name="ticket",
            constraint=models.UniqueConstraint(
                condition=models.Q(("question_message__isnull", False)),
                fields=("question_message",),
                name="tickets_ticket_one_per_question",
            ),
        ),
    ]
