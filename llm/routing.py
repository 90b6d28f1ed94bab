"""Routes and the cheap classifier that picks one for a question.

A route is an ordered chain of ``provider:model`` entries with its own
``max_tokens`` and temperature. Routes come from the environment
(CAIRN_ROUTE_<NAME>) and can be overridden per row in the admin (LlmRoute).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from django.conf import settings

from llm.models import LlmRoute

logger = logging.getLogger(__name__)

SIMPLE, COMPLEX = "simple", "complex"
_COMPLEX_CUES = re.compile(
    r"\b(why|compare|comparison|difference|differences|versus|vs|explain|step[- ]by[- ]step|"
    r"how do i .* and|pros and cons|trade-?offs?|walk me through|troubleshoot)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ChainEntry:
    provider: str
    model: str

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class Route:
    name: str
    chain: tuple[ChainEntry, ...]
    max_tokens: int
    temperature: float


def parse_chain(raw: str) -> tuple[ChainEntry, ...]:
    entries = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        provider, _, model = item.partition(":")
        if not provider or not model:
            raise ValueError(f"chain entry {item!r} is not provider:model")
        entries.append(ChainEntry(provider.strip(), model.strip()))
    return tuple(entries)


def route_named(name: str) -> Route:
    """The route ``name``: the admin's row if there is one, else the environment's."""

    row = LlmRoute.objects.filter(name=name).first()
    if row is not None:
        return Route(name, parse_chain(row.chain), row.max_tokens, row.temperature)
    configured = settings.CAIRN_ROUTES.get(name)
    if configured is None:
        raise KeyError(f"no route named {name!r}")
    return Route(name, parse_chain(configured["chain"]), configured["max_tokens"],
                 configured["temperature"])  # fmt: skip


ROUTE_CHAIN_FLAG = "route_chain:"  # flag key prefix: "route_chain:<route name>"


def route_with_flags(route: Route, flags: Mapping[str, str]) -> Route:
    """``route`` with the chain a "route_chain:<name>" flag gives this subject, if any.

    A variant that no longer parses (the flag was saved past its validation, or the parser
    changed) keeps the route's own chain rather than failing the answer.
    """
    variant = flags.get(f"{ROUTE_CHAIN_FLAG}{route.name}")
    if not variant:
        return route
    try:
        chain = parse_chain(variant)
    except ValueError:
        chain = ()
    if not chain:
        logger.warning("route %s: flag chain %r does not parse; the route's own is used",
                       route.name, variant)  # fmt: skip
        return route
    return replace(route, chain=chain)


def route_chain_variant_check(key: str, variant: str) -> None:
    """A "route_chain:<route>" flag's validator (flags.registry): the route exists and the
    variant is a chain the parser accepts, with at least one entry."""
    name = key.removeprefix(ROUTE_CHAIN_FLAG)
    try:
        route_named(name)
    except KeyError:
        raise ValueError(f"there is no route named {name!r}") from None
    if not parse_chain(variant):
        raise ValueError("a chain needs at least one provider:model entry")


def classify_question(question: str) -> str:
    """simple or complex, by rules: length, several questions, reasoning cues."""
    words = len(question.split())
    if words > settings.CAIRN_COMPLEX_MIN_WORDS or question.count("?") > 1:
        return COMPLEX
    return COMPLEX if _COMPLEX_CUES.search(question) else SIMPLE
