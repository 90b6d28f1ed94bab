from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """Logs, request ids, Prometheus metrics and OpenTelemetry traces for every process.

    Below every app: it imports none, and apps report to it (instruments in
    ``metrics.py``, scrape-time collectors registered from their own ``ready()``).
    """

    name = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from django.conf import settings

        from observability.tracing import tracing_configure

        # Every process (web, worker, command) starts its own exporter; Celery's pool
        # children inherit the parent's, which the SDK re-arms after the fork.
        tracing_configure(enabled=settings.CAIRN_OTEL_ENABLED)
