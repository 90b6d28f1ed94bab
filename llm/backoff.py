"""How long to wait before retrying: exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential cap) spreads the
retries of many clients apart, so a recovering provider is not hit by a wave.
A provider's Retry-After wins when it gives one (capped, so a bad header cannot
stall a request).
"""

from __future__ import annotations

import random


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry)."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cap)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(0, ceiling)
