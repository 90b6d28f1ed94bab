"""uvicorn serving Cairn in a child process, against the test database: one that a test
can SIGKILL mid-answer, as an out-of-memory kill or a forced restart would.

Like tests.support.worker's Worker, the child runs in production mode (DATABASE_URL)
through the embedded server's socket, so it sees what the test commits and the test
sees what it writes. It shares the test's SECRET_KEY, so a session made in the test
(``Client.force_login``) is valid there too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings

from tests.support.processes import REPO_ROOT, free_port, manage_env
from tests.support.worker import TEST_REDIS, _database_url


class WebProcess:
    def __init__(self, log: Path, **env: str) -> None:
        self.log, self.env = log, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> WebProcess:
        env = manage_env(
            DATABASE_URL=_database_url(),
            SECRET_KEY=settings.SECRET_KEY,
            CELERY_BROKER_URL=TEST_REDIS,
            REDIS_URL=None,
            CAIRN_HTTPS="false",
            CAIRN_MEDIA_ROOT=str(settings.MEDIA_ROOT),
            **self.env,
        )
        argv = [
            sys.executable, "-m", "uvicorn", "config.asgi:application",
            "--host", "127.0.0.1", "--port", str(self.port), "--lifespan", "off",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive, f"uvicorn exited:\n{self.log.read_text()[-4000:]}"
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):  # noqa: S310
                    return self
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise AssertionError(f"uvicorn did not start:\n{self.log.read_text()[-4000:]}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no finally block, no shutdown hook, no chance to clean up."""
        if self.alive:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
