"""Serving under concurrency: simulated users asking over HTTP, SSE stream included.

Targets (issue 17, item 5), on the 2-core machine:

* closed loop (N users, each asking again as soon as its answer is done, at N = 10, 50,
  200): the saturation throughput over HTTP >= 20 answers/s and >= 0.7 x the in-process
  throughput of this same run (answer_stream called directly on threads);
* open loop (200 users, each asking about once every 30 s, Poisson arrivals, about 6.7
  questions/s, for 5 minutes): no errors, time to first token p95 <= 1 s, whole answer
  p95 <= 2 s;
* 200 stream connections to 20 answers (ten readers each, the nine late ones through
  the same Idempotency-Key): no more pool threads busy than answers.

What runs: a private embedded PostgreSQL (benchmarks/.cache/load-home) with the demo
knowledge base ingested and an API key on the demo account; the processes `manage.py
serve` starts, a Celery worker (with beat) and uvicorn with --workers W, with the
question rate limits off. Every question goes through POST /api/v1/answers with
``stream: true``: TTFT is the first ``token`` event, the whole answer the ``done`` one.
The default answerer answers; the answer caches are off (CAIRN_ANSWER_CACHE_TTL=0) unless
--cache, so that every answer is generated. The in-process throughput and the
200-to-20 case run in this process once the web processes are stopped (the case on an
in-process uvicorn, whose pool this process can count; its pool is as large as the
connections, so that only the code bounds the threads in use). Database connections are
counted in pg_stat_activity every half second. Every process caps its connections with
its pool (CAIRN_DB_POOL_MAX_SIZE, 20 unless --db-pool-max-size says otherwise; 0: no pool,
as before issue 17's cap). Prints a table and one JSON line.

    .venv/bin/python benchmarks/load.py [--workers 2] [--closed-seconds 30] [--open-seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME = REPO_ROOT / "benchmarks" / ".cache" / "load-home"
GOLDEN_QUESTIONS = REPO_ROOT / "tests" / "golden" / "questions.jsonl"
DEMO_DOCUMENTS = REPO_ROOT / "kb" / "demo" / "documents"
START_TIMEOUT = 180.0
TARGET_ANSWERS_PER_S = 20.0
TARGET_RATIO = 0.7
TARGET_TTFT_P95_S = 1.0
TARGET_TOTAL_P95_S = 2.0
SAMPLE_SECONDS = 0.5


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (W)")
    parser.add_argument(
        "--closed-users", default="10,50,200", help="closed-loop N, comma-separated"
    )
    parser.add_argument("--closed-seconds", type=float, default=30.0, help="each closed loop")
    parser.add_argument("--open-users", type=int, default=200)
    parser.add_argument("--open-interval", type=float, default=30.0,
                        help="mean seconds between one user's questions")  # fmt: skip
    parser.add_argument("--open-seconds", type=float, default=300.0)
    parser.add_argument("--fanout-answers", type=int, default=20)
    parser.add_argument("--fanout-connections", type=int, default=200)
    parser.add_argument("--fanout-word-ms", type=int, default=100,
                        help="streaming pace in the 200-to-20 case: slow enough that every "
                             "reader connects while its answer is written")  # fmt: skip
    parser.add_argument("--inprocess-threads", type=int, default=4)
    parser.add_argument("--inprocess-seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=int, default=4, help="answers per web worker first")
    parser.add_argument("--cache", action="store_true", help="keep the answer caches on")
    parser.add_argument("--db-pool-max-size", type=int, default=None,
                        help="CAIRN_DB_POOL_MAX_SIZE of every process (default: the "
                             "environment's, else the settings' 20; 0: no pool)")  # fmt: skip
    parser.add_argument("--documents", type=Path, default=DEMO_DOCUMENTS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    os.environ.update(_answer_env(args))  # this process answers too (in-process, 200-to-20)
    if args.db_pool_max_size is not None:  # the children inherit it through _env
        os.environ["CAIRN_DB_POOL_MAX_SIZE"] = str(args.db_pool_max_size)
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks._embedded import embedded_django

    embedded_django(HOME)
    # The children run in embedded mode on the same folder: the same database, and the
    # filesystem broker under it.
    report(measure(args, child_env={}, log_folder=HOME / "logs"))


def _answer_env(args: argparse.Namespace) -> dict[str, str]:
    return {} if args.cache else {"CAIRN_ANSWER_CACHE_TTL": "0"}


# --- the processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """A web or worker process in its own session, so that stopping it stops all of it."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _env(args: argparse.Namespace, child_env: dict[str, str | None]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update({
        # Raised for the run: one API key asks every question, from one address.
        "CAIRN_API_KEY_RATE_LIMIT": "", "CAIRN_IP_RATE_LIMIT": "", "CAIRN_CHAT_RATE_LIMIT": "",
        "CAIRN_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings", **_answer_env(args),
    })  # fmt: skip
    for key, value in child_env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def web_start(args: argparse.Namespace, env: dict[str, str], log: Path) -> tuple[Child, str]:
    """uvicorn as `manage.py serve` starts it, with --workers W; its URL once /readyz is ok."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--lifespan", "on", "--timeout-graceful-shutdown", "10",
            "--workers", str(args.workers)]  # fmt: skip
    web = Child(argv, env, log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if web.process.poll() is not None:
            raise SystemExit(f"the web process exited; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
                if json.load(response).get("status") == "ok":
                    return web, url
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    web.stop()
    raise SystemExit(f"the web process was not ready; see {log}")


def worker_start(env: dict[str, str], log: Path) -> Child:
    argv = [sys.executable, "-m", "celery", "-A", "config.celery_app", "worker", "--beat",
            f"--schedule={log.parent / 'load-beat-schedule'}", "--concurrency=1",
            "--loglevel=WARNING", "--without-gossip", "--without-mingle"]  # fmt: skip
    return Child(argv, env, log)


# --- the clients -----------------------------------------------------------------------


@dataclass
class Sample:
    started: float
    ended: float = 0.0
    ttft: float | None = None
    error: str = ""

    @property
    def total(self) -> float:
        return self.ended - self.started


async def ask(client: Any, url: str, key: str, question: str, idempotency_key: str = "",
              first_token: asyncio.Event | None = None) -> Sample:  # fmt: skip
    """One question over POST /api/v1/answers, streamed, read to its ``done`` event."""
    import httpx2

    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    sample = Sample(time.perf_counter())
    done = False
    try:
        body = {"question": question, "stream": True}
        async with client.stream(
            "POST", f"{url}/api/v1/answers", headers=headers, json=body
        ) as response:
            if response.status_code != 200:
                await response.aread()
                sample.error = f"HTTP {response.status_code}"
            else:
                async for line in response.aiter_lines():
                    if not line.startswith("event:"):
                        continue
                    event = line[6:].strip()
                    if event == "token" and sample.ttft is None:
                        sample.ttft = time.perf_counter() - sample.started
                        if first_token is not None:
                            first_token.set()
                    elif event == "error":
                        sample.error = "error event"
                    elif event == "done":
                        done = True
                        break
                if not done and not sample.error:
                    sample.error = "no done event"
    except httpx2.HTTPError as exc:
        sample.error = type(exc).__name__
    sample.ended = time.perf_counter()
    if sample.ttft is None:  # an answer without a token event: all of it came at once
        sample.ttft = sample.total
    if first_token is not None:
        first_token.set()
    return sample


def _client(connections: int) -> Any:
    import httpx2

    most = connections + 8
    limits = httpx2.Limits(max_connections=most, max_keepalive_connections=most)
    return httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(180.0))


def db_connections() -> tuple[int, int]:
    """(connections to the database, those running a query), this sampler's left out."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'active') FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        total, active = cursor.fetchone()
    return int(total), int(active)


@dataclass
class Phase:
    name: str
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    connections: list[tuple[int, int]] = field(default_factory=list)
    sampling_errors: set[str] = field(default_factory=set)
    window_end: float = 0.0

    def figures(self) -> dict[str, Any]:
        ok = [s for s in self.samples if not s.error]
        in_window = [s for s in ok if s.ended <= self.window_end]
        return {
            "questions": len(self.samples),
            "answers": len(ok),
            "errors": len(self.samples) - len(ok),
            "error_kinds": sorted({s.error for s in self.samples if s.error}),
            "answers_per_s": len(in_window) / self.seconds if self.seconds else 0.0,
            "ttft_s": percentiles([s.ttft or 0.0 for s in ok]),
            "total_s": percentiles([s.total for s in ok]),
            "db_connections_max": max((c[0] for c in self.connections), default=0),
            "db_connections_mean": round(statistics.fmean(c[0] for c in self.connections), 1)
            if self.connections else 0.0,
            "db_active_max": max((c[1] for c in self.connections), default=0),
            "db_sampling_errors": sorted(self.sampling_errors),
        }  # fmt: skip


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


async def _sampling(phase: Phase, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body``, counting database connections every SAMPLE_SECONDS meanwhile, on a
    thread of its own that keeps its one connection (it must not compete for one)."""
    from django.db import connection

    stop = threading.Event()

    def sample() -> None:
        try:
            while not stop.is_set():
                try:
                    phase.connections.append(db_connections())
                except Exception as exc:  # no connection to be had: that is the figure
                    phase.sampling_errors.add(type(exc).__name__)
                    connection.close()
                stop.wait(SAMPLE_SECONDS)
        finally:
            connection.close()

    sampler = threading.Thread(target=sample, name="load-db-sampler", daemon=True)
    sampler.start()
    try:
        await body()
    finally:
        stop.set()
        await asyncio.to_thread(sampler.join)


async def closed_loop(url: str, key: str, users: int, seconds: float,
                      questions: list[str]) -> Phase:  # fmt: skip
    """``users`` users, each asking again as soon as its answer is done, for ``seconds``."""
    phase = Phase(f"closed N={users}", seconds)

    async def body() -> None:
        async with _client(users) as client:
            started = time.perf_counter()
            phase.window_end = started + seconds

            async def user(index: int) -> None:
                rng = random.Random(index)  # noqa: S311 (a load pattern, not a secret)
                while time.perf_counter() < phase.window_end:
                    phase.samples.append(await ask(client, url, key, rng.choice(questions)))

            await asyncio.gather(*(user(i) for i in range(users)))

    await _sampling(phase, body)
    return phase


async def open_loop(url: str, key: str, users: int, interval: float, seconds: float,
                    questions: list[str]) -> Phase:  # fmt: skip
    """``users`` users, each asking at Poisson times of mean ``interval`` s, for ``seconds``;
    every question is sent on time, whether earlier ones are answered or not."""
    phase = Phase(f"open {users} users / {interval:g} s", seconds)
    rng = random.Random(17)  # noqa: S311
    arrivals: list[float] = []
    for _ in range(users):
        at = rng.expovariate(1 / interval)
        while at < seconds:
            arrivals.append(at)
            at += rng.expovariate(1 / interval)
    arrivals.sort()

    async def body() -> None:
        async with _client(users) as client:
            started = time.perf_counter()
            phase.window_end = started + seconds + 60  # every answer asked counts
            tasks = []
            for at in arrivals:
                await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
                tasks.append(asyncio.create_task(ask(client, url, key, rng.choice(questions))))
            phase.samples.extend(await asyncio.gather(*tasks))

    await _sampling(phase, body)
    return phase


async def _warm_up(url: str, key: str, count: int, questions: list[str]) -> None:
    """Answers before the measured ones, so that every web worker has loaded its models."""
    async with _client(count) as client:
        await asyncio.gather(*(ask(client, url, key, questions[i % len(questions)])
                               for i in range(count)))  # fmt: skip


# --- in this process ---------------------------------------------------------------------


def inprocess_throughput(knowledge_base: Any, api_key: Any, threads: int, seconds: float,
                         questions: list[str]) -> dict[str, Any]:  # fmt: skip
    """Answers/s of answer_stream called directly, on ``threads`` threads."""
    from django.db import connection

    from chat.services.answers import answer_stream
    from chat.services.conversations import conversation_start

    def answer(question: str) -> None:
        _, message = conversation_start(user_id=None, api_key_id=api_key.pk,
                                        knowledge_base=knowledge_base, text=question)  # fmt: skip
        for _ in answer_stream(message_id=message.pk, cancelled=lambda: False):
            pass

    answer(questions[0])  # this process's models load
    connection.close()
    counts = [0] * threads
    end = time.perf_counter() + seconds

    def run(index: int) -> None:
        rng = random.Random(100 + index)  # noqa: S311
        try:
            while time.perf_counter() < end:
                answer(rng.choice(questions))
                if time.perf_counter() <= end:
                    counts[index] += 1
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"threads": threads, "seconds": seconds, "answers": sum(counts),
            "answers_per_s": sum(counts) / seconds}  # fmt: skip


class InProcessServer:
    """config.asgi served by uvicorn on a thread of this process: its pool is countable."""

    def __init__(self) -> None:
        import uvicorn

        from config.asgi import application

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(application, host="127.0.0.1", port=self.port, lifespan="off",
                                log_level="warning", timeout_graceful_shutdown=2)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise SystemExit("the in-process server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def fanout(key: str, answers: int, connections: int, word_ms: int,
           questions: list[str]) -> dict[str, Any]:  # fmt: skip
    """``connections`` streams to ``answers`` answers: the first reader of each creates it
    (Idempotency-Key), the others join once its first token is out."""
    from django.conf import settings

    from chat import streaming

    names = ("CAIRN_ANSWER_THREADS", "CAIRN_EXTRACTIVE_TOKEN_DELAY_MS",
             "CAIRN_API_KEY_RATE_LIMIT", "CAIRN_IP_RATE_LIMIT")  # fmt: skip
    saved = {name: getattr(settings, name) for name in names}
    settings.CAIRN_ANSWER_THREADS = connections  # only the code bounds the threads in use
    settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = word_ms
    settings.CAIRN_API_KEY_RATE_LIMIT = settings.CAIRN_IP_RATE_LIMIT = ""  # one key asks all
    readers = max(1, connections // answers)
    busy: list[int] = []
    thread_counts: list[int] = []
    try:
        with InProcessServer() as server:

            async def run() -> list[Sample]:
                stop = asyncio.Event()

                async def watch() -> None:
                    while not stop.is_set():
                        busy.append(streaming.pool_threads_busy())
                        thread_counts.append(threading.active_count())
                        await asyncio.sleep(0.02)

                watcher = asyncio.create_task(watch())
                tag = f"load-{time.time_ns()}"
                async with _client(connections) as client:

                    async def one_answer(index: int) -> list[Sample]:
                        idem = f"{tag}-{index}"
                        question = questions[index % len(questions)]
                        first = asyncio.Event()
                        primary = asyncio.create_task(
                            ask(client, server.url, key, question, idem, first_token=first)
                        )
                        await first.wait()
                        others = [ask(client, server.url, key, question, idem)
                                  for _ in range(readers - 1)]  # fmt: skip
                        return [await primary, *await asyncio.gather(*others)]

                    results = await asyncio.gather(*(one_answer(i) for i in range(answers)))
                stop.set()
                await watcher
                return [sample for group in results for sample in group]

            samples = asyncio.run(run())
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
    return {
        "answers": answers,
        "connections": len(samples),
        "errors": sum(1 for s in samples if s.error),
        "pool_threads_busy_max": max(busy, default=0),
        "process_threads_max": max(thread_counts, default=0),
        "total_s": percentiles([s.total for s in samples if not s.error]),
    }


# --- the measurement -------------------------------------------------------------------


def _questions() -> list[str]:
    rows = [json.loads(line) for line in GOLDEN_QUESTIONS.read_text().splitlines() if line]
    return list(dict.fromkeys(row["question"] for row in rows))


def _knowledge_base(documents: Path) -> tuple[Any, Any, str]:
    """The demo knowledge base (from ``documents``), every document ingested; an API key."""
    from ingest.services.demo import demo_load
    from ingest.services.pipeline import document_ingest
    from kb.models import Document
    from kb.services.api_keys import api_key_create

    loaded = demo_load(directory=documents)
    knowledge_base = loaded.knowledge_base
    # Here rather than by the worker: the run starts once they are searchable.
    for document in Document.objects.filter(knowledge_base=knowledge_base).exclude(status="ready"):
        document_ingest(document_id=document.pk)
    api_key, key = api_key_create(account=knowledge_base.account, name="load benchmark",
                                  scopes=["answer"])  # fmt: skip
    return knowledge_base, api_key, key


def measure(
    args: argparse.Namespace, *, child_env: dict[str, str | None], log_folder: Path
) -> dict[str, Any]:
    """Every figure the report prints."""
    knowledge_base, api_key, key = _knowledge_base(args.documents)
    questions = _questions()
    env = _env(args, child_env)
    closed_users = [int(n) for n in args.closed_users.split(",") if n.strip()]
    worker = worker_start(env, log_folder / "load-worker.log")
    phases: list[Phase] = []
    try:
        web, url = web_start(args, env, log_folder / "load-web.log")
        try:
            asyncio.run(_warm_up(url, key, args.warmup * args.workers, questions))
            for users in closed_users:
                phases.append(asyncio.run(
                    closed_loop(url, key, users, args.closed_seconds, questions)
                ))  # fmt: skip
            if args.open_seconds > 0 and args.open_users > 0:
                phases.append(asyncio.run(open_loop(
                    url, key, args.open_users, args.open_interval, args.open_seconds, questions
                )))  # fmt: skip
        finally:
            web.stop()
    finally:
        worker.stop()
    # The web processes are gone: this process has the machine (less the idle worker).
    inprocess = inprocess_throughput(knowledge_base, api_key, args.inprocess_threads,
                                     args.inprocess_seconds, questions)  # fmt: skip
    fan = fanout(key, args.fanout_answers, args.fanout_connections, args.fanout_word_ms,
                 questions)  # fmt: skip
    from django.conf import settings

    return {
        "workers": args.workers,
        "cache": args.cache,
        "db_pool_max_size": settings.DB_POOL_MAX_SIZE,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "phases": [{"name": p.name, "seconds": p.seconds, **p.figures()} for p in phases],
        "closed_users": closed_users,
        "inprocess": inprocess,
        "fanout": fan,
    }


# --- the report ------------------------------------------------------------------------


def _triple(figures: dict[str, float]) -> str:
    return f"{figures['p50']:.3f}/{figures['p95']:.3f}/{figures['p99']:.3f}"


def report(measured: dict[str, Any]) -> dict[str, Any]:
    """Print the table and the JSON line; return what the JSON line says."""
    m = measured
    header = (f"{'phase':<24} {'asked':>6} {'errors':>6} {'ans/s':>6} "
              f"{'TTFT p50/95/99 s':>20} {'total p50/95/99 s':>20} "
              f"{'db max/mean/active':>18}")  # fmt: skip
    print(
        f"W={m['workers']} web workers, {m['cpus']} CPUs, answer caches "
        f"{'on' if m['cache'] else 'off'}, database pool {m['db_pool_max_size'] or 'off'} per "
        f"process, load average at the end {m['load_average'][0]:.2f}"
    )
    print(header)
    for p in m["phases"]:
        t, w = p["ttft_s"], p["total_s"]
        db = f"{p['db_connections_max']}/{p['db_connections_mean']}/{p['db_active_max']}"
        print(f"{p['name']:<24} {p['questions']:>6} {p['errors']:>6} {p['answers_per_s']:>6.1f} "
              f"{_triple(t):>20} {_triple(w):>20} {db:>18}")  # fmt: skip
    for p in m["phases"]:
        if p["error_kinds"] or p["db_sampling_errors"]:
            kinds, failed = ", ".join(p["error_kinds"]), ", ".join(p["db_sampling_errors"])
            print(f"  {p['name']}: errors {kinds or '-'}; connection count failed: {failed or '-'}")
    inproc, fan = m["inprocess"], m["fanout"]
    print(
        f"in-process: {inproc['answers_per_s']:.1f} answers/s "
        f"({inproc['answers']} in {inproc['seconds']:g} s on {inproc['threads']} threads)"
    )
    print(
        f"{fan['connections']} connections to {fan['answers']} answers: "
        f"{fan['pool_threads_busy_max']} pool threads busy at most (target <= "
        f"{fan['answers']}), {fan['errors']} errors, {fan['process_threads_max']} threads "
        f"in the process at most"
    )
    closed = [p for p in m["phases"] if p["name"].startswith("closed")]
    opened = [p for p in m["phases"] if p["name"].startswith("open")]
    saturation = max((p["answers_per_s"] for p in closed), default=0.0)
    ratio = saturation / inproc["answers_per_s"] if inproc["answers_per_s"] else 0.0
    line = {
        "benchmark": "load",
        "workers": m["workers"],
        "cache": m["cache"],
        "db_pool_max_size": m["db_pool_max_size"],
        "load_average": [round(value, 2) for value in m["load_average"]],
        "closed": {
            str(n): {
                "answers_per_s": round(p["answers_per_s"], 2),
                "errors": p["errors"],
                "error_kinds": p["error_kinds"],
                "ttft_s": p["ttft_s"],
                "total_s": p["total_s"],
                "db_connections_max": p["db_connections_max"],
            }
            for n, p in zip(m["closed_users"], closed, strict=True)
        },  # fmt: skip
        "saturation_answers_per_s": round(saturation, 2),
        "inprocess_answers_per_s": round(inproc["answers_per_s"], 2),
        "http_to_inprocess": round(ratio, 2),
        "open": None,
        "fanout": {
            "answers": fan["answers"],
            "connections": fan["connections"],
            "pool_threads_busy_max": fan["pool_threads_busy_max"],
            "errors": fan["errors"],
        },  # fmt: skip
        "met": {
            "closed_throughput": saturation >= TARGET_ANSWERS_PER_S,
            "closed_ratio": ratio >= TARGET_RATIO,
            "open_no_errors": False,
            "open_ttft_p95": False,
            "open_total_p95": False,
            "fanout_threads": fan["errors"] == 0 and fan["pool_threads_busy_max"] <= fan["answers"],
        },
    }
    if opened:
        o = opened[0]
        line["open"] = {
            "questions": o["questions"], "errors": o["errors"],
            "answers_per_s": round(o["answers_per_s"], 2), "ttft_s": o["ttft_s"],
            "total_s": o["total_s"], "db_connections_max": o["db_connections_max"],
        }  # fmt: skip
        line["met"].update({
            "open_no_errors": o["errors"] == 0,
            "open_ttft_p95": o["ttft_s"]["p95"] <= TARGET_TTFT_P95_S,
            "open_total_p95": o["total_s"]["p95"] <= TARGET_TOTAL_P95_S,
        })  # fmt: skip
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
