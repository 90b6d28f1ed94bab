"""Two uvicorn servers and two Celery workers of one Cairn, as real processes.

They share what a deployment's machines share: one PostgreSQL (the test database,
reached in production mode through the embedded server's socket, as
tests/support/web_process.py does), one Redis (the machine's, 127.0.0.1:6379) as cache,
rate-limit and breaker store and as the Celery broker, and one media folder (a
deployment's shared volume or object store). Nothing else: each process has its own
memory, its own model and its own connections.

Redis: a run claims a database number of its own (``SET NX`` of a claim key in the first
free one of 8-12; 13-15 are other tests' fixed ones), so two runs on one machine never see
each other's counters, and only that database is ever flushed: before the processes start
and after they stop. In between only the cache's keys are deleted, never the broker's
(kombu keeps its exchange bindings there, declared once per process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from celery import Celery

from tests.support.processes import REPO_ROOT, free_port, manage_env

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
CANDIDATE_DATABASES = range(8, 13)
CLAIM_KEY = "cairn-tests:multi-server:claim"
CLAIM_SECONDS = 1800  # outlives any run; a run killed mid-way frees its database by then
CACHE_KEYS = "cairn:*"  # Django's cache: KEY_PREFIX "cairn" (config/settings.py)
TASK_QUEUE = "celery"  # CAIRN_TASK_QUEUE's default
START_TIMEOUT = 180  # four processes importing Django and torch on two cores


class ClusterError(AssertionError):
    """The cluster could not be set up; the message says why and what to look at."""


@dataclass
class RedisDatabase:
    """One Redis database that this run alone uses (see the module's docstring)."""

    number: int
    owner: str

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.number}"

    @property
    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def reset(self) -> None:
        """Empty it, keeping the claim: in one MULTI, so no other run can slip in between.
        Only while no process of the cluster runs."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.flushdb()
            pipe.set(CLAIM_KEY, self.owner, ex=CLAIM_SECONDS)
            pipe.execute()

    def cache_clear(self) -> None:
        """Forget every cached answer, rate-limit counter, breaker and lock."""
        client = self.client
        keys = list(client.scan_iter(match=CACHE_KEYS, count=1000))
        if keys:
            client.delete(*keys)
        client.expire(CLAIM_KEY, CLAIM_SECONDS)

    def release(self) -> None:
        if self.client.get(CLAIM_KEY) == self.owner.encode():
            self.client.flushdb()


def redis_database_claim() -> RedisDatabase:
    """Claim a free Redis database; fail (not skip) when Redis is not there: CI has it."""
    owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise ClusterError(
            f"the multi-server test needs Redis on {REDIS_HOST}:{REDIS_PORT} ({exc}); start it "
            "with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''"
        ) from exc
    for number in CANDIDATE_DATABASES:
        database = RedisDatabase(number, owner)
        if database.client.set(CLAIM_KEY, owner, nx=True, ex=CLAIM_SECONDS):
            database.reset()  # what a killed run may have left
            return database
    raise ClusterError(
        f"Redis databases {CANDIDATE_DATABASES.start}-{CANDIDATE_DATABASES.stop - 1} are all "
        f"claimed by other runs ({CLAIM_KEY})"
    )


@dataclass
class Process:
    """A child process in its own process group, with its output in ``log``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def terminate(self) -> None:
        """SIGTERM to the group: uvicorn and Celery shut down cleanly."""
        if self.alive:
            assert self.popen is not None
            os.killpg(self.popen.pid, signal.SIGTERM)

    def wait_stopped(self) -> None:
        """Wait for a terminated process; SIGKILL it if it takes too long."""
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def tail(self, characters: int = 3000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n{text[-characters:]}"


@dataclass
class WebServer(Process):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        """/readyz is 200: database, broker and the lifespan warm-up (model loaded)."""
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.HTTPError):
            return False


@dataclass
class CeleryWorker(Process):
    node: str = ""

    def task_runs(self, task: str) -> list[dict]:
        """The ``data`` of each "Task … succeeded" line this worker logged for ``task``
        (args and return value), from its JSON log."""
        runs = []
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            data = record.get("data") or {}
            if data.get("name") == task and "succeeded" in record.get("message", ""):
                runs.append(data)
        return runs


@dataclass
class Cluster:
    servers: list[WebServer]
    workers: list[CeleryWorker]
    redis: RedisDatabase
    media_root: Path
    processes: list[Process] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(process.tail() for process in self.processes)

    def workers_idle(self) -> bool:
        """No task waiting in the queue, none running or reserved on either worker."""
        if self.redis.client.llen(TASK_QUEUE):
            return False
        nodes = [worker.node for worker in self.workers]
        probe = Celery("multi-server-probe", broker=self.redis.url, set_as_current=False)
        try:
            inspect = probe.control.inspect(destination=nodes, timeout=2.0)
            active, reserved = inspect.active() or {}, inspect.reserved() or {}
        finally:
            probe.close()
        replied = set(active) >= set(nodes) and set(reserved) >= set(nodes)
        return replied and not any(active.values()) and not any(reserved.values())


def _web_server(name: str, env: dict[str, str], folder: Path) -> WebServer:
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "config.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on",
    ]  # fmt: skip
    return WebServer(name, argv, env, folder / f"{name}.log", port=port)


def _celery_worker(name: str, env: dict[str, str], folder: Path) -> CeleryWorker:
    node = f"{name}-{uuid.uuid4().hex[:6]}@multi-server"
    argv = [
        sys.executable, "-m", "celery", "-A", "config.celery_app", "worker",
        "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle",
        f"--hostname={node}",
    ]  # fmt: skip
    return CeleryWorker(name, argv, env, folder / f"{name}.log", node=node)


def _workers_answering(broker_url: str, nodes: list[str]) -> bool:
    """Do both workers answer a remote-control ping, i.e. consume from the broker?"""
    probe = Celery("multi-server-probe", broker=broker_url, set_as_current=False)
    try:
        replies = probe.control.ping(destination=nodes, timeout=1.0) or []
    finally:
        probe.close()
    return {node for reply in replies for node in reply} >= set(nodes)


@contextmanager
def running_cluster(
    *, folder: Path, database_url: str, secret_key: str, **env: str
) -> Iterator[Cluster]:
    """Start two web servers and two workers at once, wait until every one is ready,
    yield them, then stop them all (and flush this run's Redis database)."""
    database = redis_database_claim()
    media_root = folder / "media"
    media_root.mkdir(parents=True, exist_ok=True)
    shared = manage_env(
        DATABASE_URL=database_url,
        SECRET_KEY=secret_key,
        REDIS_URL=database.url,
        CELERY_BROKER_URL=database.url,
        CAIRN_HTTPS="false",
        CAIRN_MEDIA_ROOT=str(media_root),
        # Four processes on two cores: one torch thread each.
        CAIRN_EMBEDDING_THREADS="1",
        PROMETHEUS_MULTIPROC_DIR=None,
        **env,
    )
    servers = [_web_server(f"web-{n}", shared, folder) for n in (1, 2)]
    workers = [_celery_worker(f"worker-{n}", shared, folder) for n in (1, 2)]
    cluster = Cluster(servers, workers, database, media_root, [*servers, *workers])
    try:
        for process in cluster.processes:
            process.start()
        deadline = time.monotonic() + START_TIMEOUT
        waiting = [*servers]
        workers_ready = False
        while waiting or not workers_ready:
            if dead := [p.name for p in cluster.processes if not p.alive]:
                raise ClusterError(f"{', '.join(dead)} exited during start-up\n{cluster.logs()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"not ready after {START_TIMEOUT} s\n{cluster.logs()}")
            waiting = [server for server in waiting if not server.ready()]
            if not workers_ready:
                workers_ready = _workers_answering(database.url, [w.node for w in workers])
            time.sleep(0.2)
        yield cluster
    finally:
        for process in cluster.processes:
            process.terminate()
        for process in cluster.processes:
            process.wait_stopped()
        database.release()
