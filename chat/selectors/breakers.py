"""The circuit breakers of the configured routes and the state each is in now.

Breaker state lives in the cache (llm.breaker), so reading it here costs a
cache get per chain entry and one query for the admin's route overrides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from llm.breaker import BreakerState, CircuitBreaker
from llm.models import LlmRoute
from llm.routing import ChainEntry, parse_chain

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerReading:
    entry: ChainEntry
    state: BreakerState


def configured_chain_entries() -> list[ChainEntry]:
    """Every provider:model the routes in force may call, each once, in route order.

    An admin's LlmRoute row replaces the environment's route of the same name, as in
    ``llm.routing.route_named``; a row whose chain cannot be parsed is skipped
    (the gateway would fail on it too, and says so there).
    """
    chains = {name: route["chain"] for name, route in settings.CAIRN_ROUTES.items()}
    chains.update(LlmRoute.objects.values_list("name", "chain"))
    entries: dict[str, ChainEntry] = {}
    for name, raw in chains.items():
        try:
            parsed = parse_chain(raw)
        except ValueError:
            logger.warning("route %s: chain %r cannot be parsed", name, raw)
            continue
        for entry in parsed:
            entries.setdefault(entry.key, entry)
    return list(entries.values())


def breaker_states() -> list[BreakerReading]:
    """The breaker state of every configured chain entry (closed, open or half_open)."""
    return [
        BreakerReading(
            entry,
            CircuitBreaker(
                entry.key,
                threshold=settings.CAIRN_BREAKER_THRESHOLD,
                cooldown_seconds=settings.CAIRN_BREAKER_COOLDOWN,
            ).state(),
        )
        for entry in configured_chain_entries()
    ]
