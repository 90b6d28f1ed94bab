from django.apps import AppConfig


class KbConfig(AppConfig):
    """Tenants, knowledge bases, documents, chunks and retrieval."""

    name = "kb"
    verbose_name = "Knowledge base"
