"""Serving a blocking event stream to an async view without a thread per connection.

Generation is synchronous (the gateway, the ORM, the embedder), so it runs on a
bounded pool of CAIRN_ANSWER_THREADS threads per web process. The SSE
connection itself is a coroutine: it awaits an asyncio queue the generating
thread feeds, sends heartbeats while it waits, and when the client goes away
(Django cancels the response) it sets the cancel flag the generator polls
between tokens, which closes the provider call.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection
from django.http import StreamingHttpResponse

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


def closing_connection(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, closing the database connection it used when it returns.

    For the sync steps of an async stream (through sync_to_async): a stream may stay
    open for minutes, and must not hold a PostgreSQL connection all that time.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    return run


THREAD_NAME_PREFIX = "cairn-answer"

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_generation = 0
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The process's generation pool (rebuilt if CAIRN_ANSWER_THREADS changed, for tests)."""
    global _pool, _pool_size, _pool_generation
    with _pool_lock:
        if _pool is None or _pool_size != settings.CAIRN_ANSWER_THREADS:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool_size = settings.CAIRN_ANSWER_THREADS
            _pool_generation += 1
            _pool = ThreadPoolExecutor(
                max_workers=_pool_size, thread_name_prefix=pool_thread_prefix()
            )
        return _pool


def pool_thread_prefix() -> str:
    """Name prefix of the current pool's threads (an old pool's may linger a moment)."""
    return f"{THREAD_NAME_PREFIX}-{_pool_generation}"


@dataclass(frozen=True)
class Heartbeat:
    """Nothing happened for a while; the connection should say it is alive."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _End:
    pass


class Relay(Generic[T]):
    """Items of ``produce(cancelled)``, produced on a pool thread, awaited here."""

    def __init__(self, produce: Callable[[Callable[[], bool]], Iterator[T]]) -> None:
        self._produce = produce
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def _run(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (server shutting down)
                self._cancel.set()

        close_old_connections()
        try:
            for item in self._produce(self._cancel.is_set):
                put(item)
        except BaseException as exc:  # handed to the coroutine, which re-raises it
            put(_Failed(exc))
        finally:
            put(_End())
            connection.close()  # this thread's connection; the pool thread lives on

    async def events(self, *, heartbeat: float) -> AsyncIterator[T | Heartbeat]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        # In the caller's context: the request id (and any other context variable) goes
        # with the answer into the pool thread, so its log lines and ledger rows carry it.
        context = contextvars.copy_context()
        loop.run_in_executor(_executor(), context.run, self._run, loop, queue)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=heartbeat)
                except TimeoutError:
                    yield Heartbeat()
                    continue
                if isinstance(item, _End):
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            # Normal end, client disconnect (CancelledError) or error: the producer stops
            # at its next check. It is not awaited: a disconnect must not wait on a model.
            self._cancel.set()


def event_stream_response(events: AsyncIterator[str]) -> StreamingHttpResponse:
    """An SSE response that nothing between here and the client buffers or rewrites."""
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
