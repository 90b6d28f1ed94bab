"""chat's figures on /metrics, read at scrape time (registered in ChatConfig.ready)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from chat.selectors.breakers import breaker_states

logger = logging.getLogger(__name__)


class BreakerCollector:
    """Circuit breaker state per provider:model of the configured routes."""

    STATES = ("closed", "open", "half_open")

    def collect(self) -> Iterator[Metric]:
        try:
            readings = breaker_states()
        except Exception:
            logger.exception("metrics: breaker states could not be read")
            return
        family = GaugeMetricFamily(
            "cairn_llm_circuit_breaker_state",
            "1 for the state each provider:model's circuit breaker is in, 0 for the others.",
            labels=["provider", "model", "state"],
        )
        for reading in readings:
            for state in self.STATES:
                family.add_metric(
                    [reading.entry.provider, reading.entry.model, state],
                    1 if reading.state == state else 0,
                )
        yield family
