"""Admin-facing views of kb.Document owned by ingestion."""

from __future__ import annotations

from kb.models import Document


class FailedDocument(Document):
    """The dead-letter list: documents ingestion gave up on, with their reasons."""

    class Meta:
        proxy = True
        verbose_name = "failed document"
        verbose_name_plural = "failed documents (dead letters)"
