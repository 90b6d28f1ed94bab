"""Streamed answers under the connection cap (issue 17): more answers at once than the
pool has connections, over the real ASGI server. The request threads, the answer pool's
threads and the streams' sync steps all borrow from the process's pool; every answer
completes, PostgreSQL never sees more connections than the cap, and every connection is
back in the pool afterwards (a thread that kept one would shrink the pool for good)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx2
import pytest

from tests.support.api import api_client
from tests.support.db_pool import client_backends, pool_of, raw_connection
from tests.support.live_server import running_asgi_server

pytestmark = pytest.mark.django_db(transaction=True)

QUESTIONS = [
    "How much does the Growth plan cost per month?",
    "How are refunds for annual plans calculated?",
]


async def _ask_all(url: str, key: str, count: int) -> list[str]:
    """``count`` streamed answers at once; the last event of each."""

    async def one(client: httpx2.AsyncClient, question: str) -> str:
        last = ""
        async with client.stream(
            "POST", f"{url}/api/v1/answers", json={"question": question, "stream": True},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:  # fmt: skip
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    last = line[6:].strip()
        return last

    limits = httpx2.Limits(max_connections=count + 2)
    async with httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(120.0)) as client:
        return list(await asyncio.gather(*(one(client, QUESTIONS[i % 2]) for i in range(count))))


def test_more_streamed_answers_than_connections_all_finish_within_the_cap(
    help_kb, settings
) -> None:
    settings.CAIRN_ANSWER_CACHE_TTL = 0  # every answer generated, none from the cache
    settings.CAIRN_API_KEY_RATE_LIMIT = settings.CAIRN_IP_RATE_LIMIT = ""
    _, _, key = api_client(help_kb.account, ["answer"])
    answers = 8
    samples: list[int] = []
    with running_asgi_server() as server, pool_of(3, timeout=60) as pool:
        observer = raw_connection()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(client_backends(observer)[0])
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            last_events = asyncio.run(_ask_all(server.url, key, answers))
            # An answer thread gives its connection back as it ends, which can be just
            # after the client has read the last event.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                stats = pool.get_stats()
                if stats["pool_available"] == stats["pool_size"]:
                    break
                time.sleep(0.05)
        finally:
            done.set()
            sampler.join()
            observer.close()
        stats = pool.get_stats()

    assert last_events == ["done"] * answers
    assert 0 < max(samples) <= 3
    assert stats["pool_size"] == stats["pool_available"]  # every connection given back
