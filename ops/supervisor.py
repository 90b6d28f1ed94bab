"""A small process supervisor for ``manage.py serve``: start children, stop them in order.

Each child runs in its own session so that Ctrl-C reaches only the supervisor,
which then stops the web server first (no new requests), then the worker (it
finishes or requeues its task), and lets manage.py stop the database last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    stop_requested: bool = False

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, frame: object) -> None:
            self.stop_requested = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        process = subprocess.Popen(list(argv), env=env, start_new_session=True)
        child = Child(name, process)
        self.children.append(child)
        return child

    def wait(self, poll_seconds: float = 0.3) -> Child | None:
        """Block until a stop is requested (None) or a child exits (that child)."""
        while not self.stop_requested:
            for child in self.children:
                if child.process.poll() is not None:
                    return child
            time.sleep(poll_seconds)
        return None

    def stop_all(self, grace_seconds: float = 15.0) -> None:
        """Stop children newest first: the web server (started last) before the worker."""
        for child in reversed(self.children):
            self._stop(child, grace_seconds)

    @staticmethod
    def _stop(child: Child, grace_seconds: float) -> None:
        if child.process.poll() is not None:
            return
        # The leader only: it shuts its own pool down cleanly (celery warm shutdown).
        child.process.terminate()
        try:
            child.process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
