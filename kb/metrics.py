"""kb's figures on /metrics, read at scrape time (registered in KbConfig.ready)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from kb.selectors.document_counts import document_status_counts

logger = logging.getLogger(__name__)


class DocumentCollector:
    """Documents by status and the ingestion backlog, from one GROUP BY."""

    def collect(self) -> Iterator[Metric]:
        try:
            counts = document_status_counts()
        except Exception:
            logger.exception("metrics: documents by status could not be read")
            return
        by_status = GaugeMetricFamily(
            "cairn_documents", "Documents by ingestion status.", labels=["status"]
        )
        for status, n in sorted(counts.items()):
            by_status.add_metric([status], n)
        yield by_status
        yield GaugeMetricFamily(
            "cairn_ingest_queue_documents",
            "Documents waiting for or in ingestion (pending + processing).",
            value=counts.get("pending", 0) + counts.get("processing", 0),
        )
