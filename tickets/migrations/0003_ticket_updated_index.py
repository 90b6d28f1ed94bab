from django.db import migrations, models


class Migration(migrations.Migration):
    """The inbox's live stream reads the tickets changed since it last looked."""

    dependencies = [("tickets", "0002_ticket_one_per_question")]

    operations = [
        migrations.AddIndex(
            model_name="ticket",
            index=models.Index(fields=["account", "updated_at"], name="tickets_account_updated"),
        ),
    ]
