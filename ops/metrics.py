"""The Celery queue's length on /metrics, read at scrape time (registered in OpsConfig.ready)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from config.celery_app import app
from observability.broker_queue import celery_queue_length

logger = logging.getLogger(__name__)


class CeleryQueueCollector:
    """Task messages waiting in Cairn's Celery queue; reported on Redis brokers only."""

    def collect(self) -> Iterator[Metric]:
        queue = app.conf.task_default_queue
        try:
            length = celery_queue_length(
                broker_url=str(app.conf.broker_url),
                queue=queue,
                transport_options=app.conf.broker_transport_options,
            )
        except Exception:
            logger.warning("metrics: the Celery queue %r could not be read", queue, exc_info=True)
            return
        if length is None:
            return
        family = GaugeMetricFamily(
            "cairn_celery_queue_messages",
            "Task messages waiting in the Celery queue (Redis LLEN over its priority lists).",
            labels=["queue"],
        )
        family.add_metric([queue], length)
        yield family
