"""Documents remember which version search serves, and keep its file while a newer
upload is not ready (a failed new version loses nothing).

Existing rows: a ready document serves its own version; any other serves the newest
version it has chunks of (a re-upload pending or failed), or none. Files of earlier
versions were deleted at upload before this migration, so nothing is to be kept.
"""

from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery

import kb.models


def live_versions_fill(apps, schema_editor):
    Document = apps.get_model("kb", "Document")
    Chunk = apps.get_model("kb", "Chunk")
    Document.objects.filter(status="ready").update(live_version=F("version"))
    newest_chunked = (
        Chunk.objects.filter(document_id=OuterRef("pk"))
        .order_by("-document_version")
        .values("document_version")[:1]
    )
    Document.objects.exclude(status="ready").update(live_version=Subquery(newest_chunked))


class Migration(migrations.Migration):
    dependencies = [
        ("kb", "0008_daily_cost_alert"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="live_version",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="document",
            name="previous_file",
            field=models.FileField(
                blank=True, max_length=500, upload_to=kb.models.document_upload_to
            ),
        ),
        migrations.AddField(
            model_name="document",
            name="previous_filename",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name="document",
            name="previous_mime_type",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.RunPython(live_versions_fill, migrations.RunPython.noop),
    ]
