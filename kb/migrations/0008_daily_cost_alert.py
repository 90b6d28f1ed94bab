from decimal import Decimal

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kb", "0007_flagged_passages"),
    ]

    operations = [
        migrations.AddField(
            model_name="account",
            name="daily_cost_alert",
            field=models.DecimalField(
                blank=True,
                decimal_places=2,
                help_text="Dollars: when a day's spend on language models passes this, the account's admins get one mail that day. Empty: the server's CAIRN_DAILY_COST_ALERT (if set).",
                max_digits=12,
                null=True,
                validators=[django.core.validators.MinValueValidator(Decimal("0.01"))],
            ),
        ),
        migrations.AddField(
            model_name="account",
            name="daily_cost_alerted_on",
            field=models.DateField(
                blank=True, editable=False, null=True, verbose_name="last daily cost alert"
            ),
        ),
    ]
