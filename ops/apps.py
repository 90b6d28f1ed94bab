from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: the ``serve`` supervisor, start-up and readiness checks, the warm-up,
    the embedded database's command and the configuration reference (docs/operations.md).

    The top layer: it may import every app, and none imports it.
    """

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from config.signals import server_starting
        from observability.metrics import scrape_time_collector_register
        from ops.metrics import CeleryQueueCollector
        from ops.warmup import warm_up_on_server_start

        server_starting.connect(warm_up_on_server_start, dispatch_uid="ops.warm_up")
        scrape_time_collector_register(CeleryQueueCollector())
