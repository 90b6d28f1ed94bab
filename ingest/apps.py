from django.apps import AppConfig


class IngestConfig(AppConfig):
    """Parsing, chunking, embedding and the ingestion tasks (see docs/architecture.md)."""

    name = "ingest"
    verbose_name = "Ingestion"
