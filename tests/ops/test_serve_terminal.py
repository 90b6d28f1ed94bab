"""`make run` at a terminal, as a user sees it: `manage.py serve` on a pseudo-terminal.

Its log lines are plain text, the start-up line names the real address, kombu does
not warn about a missing hostname, the broker writes nothing into the working
directory, and a browser's request for /favicon.ico is answered, not a 404.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.support.processes import REPO_ROOT, free_port, manage_env

READY_SECONDS = 240


class Terminal:
    """A pseudo-terminal whose output is collected as it comes (so the child never
    blocks on a full terminal buffer)."""

    def __init__(self) -> None:
        self.controller, self.far_end = os.openpty()
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:  # EIO: every process closed the terminal
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        self._reader.join(timeout=10)
        os.close(self.controller)


def test_make_run_at_a_terminal_shows_readable_quiet_logs(tmp_path: Path) -> None:
    home, workdir = tmp_path / "home", tmp_path / "workdir"
    workdir.mkdir()
    port = free_port()
    terminal = Terminal()
    env = manage_env(
        CAIRN_HOME=str(home),
        DATABASE_URL=None,
        REDIS_URL=None,
        CELERY_BROKER_URL=None,
        CAIRN_LOG_FORMAT=None,
        CAIRN_LOAD_DEMO="false",
    )
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "manage.py"), "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal.far_end,
        stderr=terminal.far_end,
    )
    os.close(terminal.far_end)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while "Cairn is ready at" not in terminal.text():
            assert process.poll() is None, terminal.text()
            assert time.monotonic() < deadline, terminal.text()
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/favicon.ico", timeout=10) as icon:
            assert icon.status == 200
            assert icon.headers["Content-Type"] == "image/x-icon"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            exit_code = process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        terminal.close()

    output = terminal.text()
    assert exit_code == 0, output
    assert re.search(
        rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO uvicorn\.error: "
        rf"Uvicorn running on http://127\.0\.0\.1:{port} \(Press CTRL\+C to quit\)$",
        output,
        flags=re.MULTILINE,
    ), output
    assert not re.search(r'^\{"ts"', output, flags=re.MULTILINE), "no JSON at a terminal"
    assert "[IP_" not in output
    assert "No hostname was supplied" not in output
    assert "Not Found: /favicon.ico" not in output
    assert re.search(r"INFO cairn\.requests \[\w+\]: GET /favicon\.ico 200", output), output
    assert (home / "broker" / "control" / "celery.exchange").is_file()
    assert list(workdir.iterdir()) == [], "the broker wrote into the working directory"
