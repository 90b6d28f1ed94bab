"""`manage.py serve` (what `make run` runs) on a fresh data folder, end to end.

A real embedded PostgreSQL is created, migrated and seeded; a real Celery worker
and uvicorn start; the admin login works and lists the demo documents; Ctrl-C
stops everything; a second run reuses it all.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.processes import REPO_ROOT, free_port, manage_env

DEMO_TITLES = ["Getting started", "Billing and refunds", "Troubleshooting bank sync"]


def _start(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=manage_env(CAIRN_HOME=str(home)),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"not ready after {timeout}s:\n{log.read_text()}")


def _stop_with_ctrl_c(process: subprocess.Popen[bytes], log: Path) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"serve did not stop on Ctrl-C:\n{log.read_text()}") from None


def _admin_session(port: int, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login_url = f"http://127.0.0.1:{port}/admin/login/?next=/admin/"
    page = opener.open(login_url, timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, page
    form = urllib.parse.urlencode(
        {"username": "admin", "password": password, "csrfmiddlewaretoken": token.group(1)}
    ).encode()
    landing = opener.open(login_url, data=form, timeout=10)
    assert landing.geturl().endswith("/admin/"), "login failed"
    return opener


def test_serve_sets_up_serves_and_stops_cleanly_then_reuses_everything(tmp_path) -> None:
    home = tmp_path / "cairn-home"
    port = free_port()
    first_log = tmp_path / "first.log"

    # First run on an empty data folder
    process = _start(home, port, first_log)
    try:
        ready = _wait_ready(port, process, first_log)
        assert ready["status"] == "ok"
        assert all(check["ok"] for check in ready["checks"].values())

        password_file = home / "admin_password.txt"
        password = re.search(r"password: (\S+)", password_file.read_text()).group(1)  # type: ignore[union-attr]
        assert f"password '{password}'" in first_log.read_text(), "shown once on first run"

        admin = _admin_session(port, password)
        documents = admin.open(f"http://127.0.0.1:{port}/admin/kb/document/").read().decode()
        for title in DEMO_TITLES:
            assert title in documents
    finally:
        exit_code = _stop_with_ctrl_c(process, first_log)

    output = first_log.read_text()
    assert exit_code == 0, output
    assert "Traceback" not in output
    assert not (home / "pgdata" / "postmaster.pid").exists(), "the database was left running"
    assert "celery@" in output and "Warm shutdown" in output, "the worker ran and stopped"

    # Second run: same folder, nothing is created again
    second_log = tmp_path / "second.log"
    process = _start(home, port, second_log)
    try:
        _wait_ready(port, process, second_log)
    finally:
        assert _stop_with_ctrl_c(process, second_log) == 0
    second = second_log.read_text()
    assert "Created the administrator" not in second
    assert "demo documents" not in second
