"""How many task messages wait in the Celery queue, read from a Redis broker.

kombu keeps a Redis queue as lists: the queue's own name for priority 0 and
``<queue><sep><step>`` for each further priority step, every key under the
transport's ``global_keyprefix``. The length is the sum of their LLENs, read in
one pipeline. Other brokers (the filesystem one of the embedded mode, AMQP) are
not read: ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import redis

# kombu.transport.redis's defaults, used when the transport options say nothing.
_PRIORITY_STEPS = (0, 3, 6, 9)
_SEPARATOR = "\x06\x16"
# A scrape must not hang on a broker that stopped answering.
_TIMEOUT_SECONDS = 1.0


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # One connection pool per broker URL for the life of the process.
    return redis.Redis.from_url(
        url, socket_timeout=_TIMEOUT_SECONDS, socket_connect_timeout=_TIMEOUT_SECONDS
    )


def broker_is_redis(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://"))


def celery_queue_length(
    *, broker_url: str, queue: str, transport_options: Mapping[str, Any] | None = None
) -> int | None:
    """Messages waiting in ``queue`` (not those a worker has taken), or None when the
    broker is not Redis. Raises redis.RedisError when Redis does not answer in time."""
    if not broker_is_redis(broker_url):
        return None
    options = transport_options or {}
    prefix = str(options.get("global_keyprefix", ""))
    separator = str(options.get("sep", _SEPARATOR))
    steps = options.get("priority_steps", _PRIORITY_STEPS)
    keys = [f"{prefix}{queue}{separator}{step}" if step else f"{prefix}{queue}" for step in steps]
    pipe = _client(broker_url).pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    return sum(int(n) for n in pipe.execute())
