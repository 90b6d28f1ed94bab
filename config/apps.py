from django.apps import AppConfig
from django.conf import settings

from config.tracing import tracing_configure


class ConfigConfig(AppConfig):
    """Holds project-level management commands (serve, preflight, embedded_db); starts
    tracing when it is enabled."""

    name = "config"
    verbose_name = "Cairn configuration"

    def ready(self) -> None:
        # Every process (web, worker, command) starts its own exporter; Celery's pool
        # children inherit the parent's, which the SDK re-arms after the fork.
        tracing_configure(enabled=settings.CAIRN_OTEL_ENABLED)
