"""Cost of a call from a configurable price table (US dollars per million tokens)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from llm.events import Usage

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Price:
    input: Decimal
    output: Decimal
    cache_read: Decimal  # prompt tokens read from the provider's cache
    cache_write: Decimal  # prompt tokens written to it

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> Price:
        base = Decimal(str(data.get("input", 0)))
        return cls(
            input=base,
            output=Decimal(str(data.get("output", 0))),
            cache_read=Decimal(str(data.get("cache_read", data.get("input", 0)))),
            cache_write=Decimal(str(data.get("cache_write", data.get("input", 0)))),
        )


FREE = Price(Decimal(0), Decimal(0), Decimal(0), Decimal(0))


def parse_price_table(raw: str) -> dict[str, Price]:
    """``{"provider:model": {"input": 3.0, "output": 15.0, "cache_read": 0.3, ...}}``."""
    return {name: Price.from_dict(values) for name, values in json.loads(raw or "{}").items()}


def call_cost(usage: Usage, price: Price) -> Decimal:
    """Cached prompt tokens are billed at the cache prices, the rest at the input price.

    ``input_tokens`` counts every prompt token (OpenAI's convention); Anthropic's
    are normalised to it by its provider.
    """
    uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    total = (
        uncached * price.input
        + usage.cache_read_tokens * price.cache_read
        + usage.cache_write_tokens * price.cache_write
        + usage.output_tokens * price.output
    )
    return (total / MILLION).quantize(Decimal("0.00000001"))
