"""Serving a blocking event stream to an async view without a thread per connection.

Generation is synchronous (the gateway, the ORM, the embedder), so it runs on a
bounded pool of CAIRN_ANSWER_THREADS threads per web process. The SSE
connection itself is a coroutine: it awaits an asyncio queue the generating
thread feeds, sends heartbeats while it waits, and when the client goes away
(Django cancels the response) it sets the cancel flag the generator polls
between tokens, which closes the provider call.

Only the stream that claims an answer takes a pool thread. Any other reader of it (a
browser reconnecting, a second tab, a retried API request, on this server or another)
waits on the event loop: one Watch per process asks the database every
WAIT_POLL_SECONDS which of the answers its readers wait on are final, in one query for
all of them, and a stream generating an answer here pokes it when that answer ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from django.http import StreamingHttpResponse

from chat.answering.context import Turn
from chat.services.answers import (
    WAIT_POLL_SECONDS,
    Finished,
    StreamEvent,
    answer_claim,
    answer_generate,
    answer_wait_seconds,
    answers_final_among,
)
from chat.services.recovery import answer_heartbeat

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)


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


_busy = 0
_busy_lock = threading.Lock()


def pool_threads_busy() -> int:
    """Pool threads serving a stream now, in this process (benchmarks/load.py reads it)."""
    return _busy


def _busy_add(delta: int) -> None:
    global _busy
    with _busy_lock:
        _busy += delta


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

        _busy_add(1)
        close_old_connections()
        try:
            for item in self._produce(self._cancel.is_set):
                put(item)
        except BaseException as exc:  # handed to the coroutine, which re-raises it
            put(_Failed(exc))
        finally:
            put(_End())
            connection.close()  # this thread's connection; the pool thread lives on
            _busy_add(-1)

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


@dataclass
class _LoopWaits(Generic[K]):
    waiters: dict[K, set[asyncio.Future[None]]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Watch(Generic[K]):
    """Coroutines waiting for keys to be done, all answered by one batch check.

    ``done_among(keys)`` (blocking: a database query) says which keys are done; it runs
    on the loop's default executor, only while someone waits, every ``interval`` seconds
    or at once when poked, for every key of the event loop at a time. A waiter holds no
    thread, so any number of them cost one check an interval.
    """

    def __init__(self, done_among: Callable[[frozenset[K]], set[K]], *, interval: float) -> None:
        self._done_among = done_among
        self._interval = interval
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaits[K]] = (
            weakref.WeakKeyDictionary()
        )

    def _waits(self) -> _LoopWaits[K]:
        loop = asyncio.get_running_loop()
        waits = self._loops.get(loop)
        if waits is None:
            waits = self._loops[loop] = _LoopWaits()
        return waits

    async def wait(self, key: K) -> None:
        """Until ``done_among`` says ``key`` is done (cancel it to give up)."""
        waits = self._waits()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waits.waiters.setdefault(key, set()).add(future)
        waits.wake.set()  # a first look at once: it may be done already
        if waits.task is None or waits.task.done():
            # In a context of its own: not the request's that happened to start it.
            waits.task = asyncio.get_running_loop().create_task(
                self._check(waits), context=contextvars.Context()
            )
        try:
            await future
        finally:
            futures = waits.waiters.get(key)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del waits.waiters[key]

    def poke(self) -> None:
        """Check now (this process has just finished something a waiter may wait on)."""
        waits = self._loops.get(asyncio.get_running_loop())
        if waits is not None and waits.waiters:
            waits.wake.set()

    async def _check(self, waits: _LoopWaits[K]) -> None:
        loop = asyncio.get_running_loop()
        while waits.waiters:
            try:
                await asyncio.wait_for(waits.wake.wait(), timeout=self._interval)
            except TimeoutError:
                pass
            waits.wake.clear()
            keys = frozenset(waits.waiters)
            if not keys:
                break
            try:
                done = await loop.run_in_executor(None, closing_connection(self._done_among), keys)
            except Exception:  # the database is away for a moment: the next round retries
                logger.exception("watch: could not check %s", sorted(map(str, keys)))
                continue
            for key in done:
                for future in waits.waiters.pop(key, set()):
                    if not future.done():
                        future.set_result(None)


_final_answers: Watch[int] = Watch(
    lambda ids: answers_final_among(message_ids=ids), interval=WAIT_POLL_SECONDS
)


async def answer_stream_events(
    *, message_id: int, heartbeat: float, history: tuple[Turn, ...] | None = None
) -> AsyncIterator[StreamEvent | Heartbeat]:
    """The events of answer ``message_id`` for one SSE connection: its tokens, generated
    on the pool, if this connection claims it; else only Finished once the stream that
    did (here or on another server) has finished it, waited for on the event loop.
    Heartbeats meanwhile, and Finished last either way."""
    claimed = await sync_to_async(closing_connection(answer_claim))(message_id=message_id)
    if claimed:
        relay = Relay(
            lambda cancelled: answer_generate(
                message_id=message_id, cancelled=cancelled, history=history
            )
        )
        # Stamped from the claim, not only once a pool thread is free: an answer queued
        # behind busy threads is alive, and the reaper must leave it alone.
        with answer_heartbeat.writing(message_id):
            async for item in relay.events(heartbeat=heartbeat):
                if isinstance(item, Finished):
                    _final_answers.poke()  # this process's other readers need not wait
                yield item
        return
    loop = asyncio.get_running_loop()
    # A deadline rather than asyncio.timeout: that would cancel whatever the consumer of
    # this generator is doing between two events, not the wait.
    deadline = loop.time() + answer_wait_seconds()
    waiting = asyncio.ensure_future(_final_answers.wait(message_id))
    try:
        while not waiting.done() and (left := deadline - loop.time()) > 0:
            done, _ = await asyncio.wait({waiting}, timeout=min(heartbeat, left))
            if not done:
                yield Heartbeat()
    finally:
        waiting.cancel()  # gone, or past the deadline: the answer shows as it is now
    yield Finished(message_id)


def event_stream_response(events: AsyncIterator[str]) -> StreamingHttpResponse:
    """An SSE response that nothing between here and the client buffers or rewrites."""
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
