"""A real Celery worker process for tests, on Redis, against the test database.

The worker runs in production mode (DATABASE_URL) pointed at the test database
through the embedded server's socket, so it sees exactly what the test commits.
Each test gets its own Redis queue, so no stray message crosses between tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from config.celery_app import app
from tests.support.processes import REPO_ROOT, STRONG_SECRET_KEY, manage_env

TEST_REDIS = "redis://127.0.0.1:6379/15"


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{quote(str(db['HOST']), safe='')}:{db['PORT']}/{db['NAME']}"


def use_broker(url: str) -> None:
    """Point this process's Celery app at another broker, dropping pooled connections."""
    from kombu import pools

    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()  # kombu keeps global pools per connection URL; start them afresh


@contextmanager
def redis_queue() -> Iterator[str]:
    """Route this process's task messages to a fresh queue on the test Redis."""
    queue = f"cairn-test-{uuid.uuid4().hex[:8]}"
    saved = (app.conf.broker_url, app.conf.task_default_queue, app.conf.broker_transport_options)
    app.conf.task_default_queue = queue
    app.conf.broker_transport_options = {}
    use_broker(TEST_REDIS)
    try:
        yield queue
    finally:
        _, app.conf.task_default_queue, app.conf.broker_transport_options = saved
        use_broker(saved[0])


class Worker:
    def __init__(self, queue: str, log: Path, **env: str) -> None:
        self.queue, self.log, self.env = queue, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, beat: bool = False) -> Worker:
        env = manage_env(
            DATABASE_URL=_database_url(),
            SECRET_KEY=STRONG_SECRET_KEY,
            CELERY_BROKER_URL=TEST_REDIS,
            REDIS_URL=None,
            CAIRN_HTTPS="false",
            CAIRN_MEDIA_ROOT=str(settings.MEDIA_ROOT),
            CAIRN_TASK_QUEUE=self.queue,
            **self.env,
        )
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config.celery_app",
            "worker",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=test-{uuid.uuid4().hex[:6]}@%h",
        ]
        if beat:
            argv += ["--beat", f"--schedule={self.log.parent / 'beat-schedule'}"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its pool children: no chance to clean up."""
        if self.alive:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(condition, *, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    details = f"\n--- worker log ---\n{log.read_text()[-4000:]}" if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{details}")
