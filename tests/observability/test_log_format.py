"""CAIRN_LOG_FORMAT: plain text at a terminal (``make run``), JSON everywhere else.

The terminals here are real pseudo-terminals (``os.openpty``), and the settings are
imported by real child processes whose stderr is one, or a pipe.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from observability.logging import (
    PlainFormatter,
    RequestIdFilter,
    log_format_resolve,
    request_id_bound,
)
from tests.support.processes import REPO_ROOT, manage_env

PLAIN_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO cairn\.edges: hello from the test$"
)
# A child that sets Django up (so LOGGING is applied) and logs one line.
LOG_ONE_LINE = (
    "import django, logging\n"
    "django.setup()\n"
    "logging.getLogger('cairn.edges').info('hello from %s', 'the test')\n"
)


@pytest.fixture
def terminal() -> Iterator[io.TextIOWrapper]:
    """The far end of a pseudo-terminal, as a text stream (isatty() is true)."""
    controller, far_end = os.openpty()
    stream = open(far_end, "w")  # noqa: SIM115 (closed below)
    try:
        yield stream
    finally:
        stream.close()
        os.close(controller)


def test_auto_is_plain_at_a_terminal_in_embedded_mode_only(terminal, tmp_path: Path) -> None:
    assert terminal.isatty()
    with (tmp_path / "log.txt").open("w") as file:
        assert log_format_resolve("auto", production=False, stream=terminal) == "plain"
        assert log_format_resolve("auto", production=False, stream=file) == "json"
        assert log_format_resolve("auto", production=True, stream=terminal) == "json"
        # An explicit choice wins over what the stream is.
        assert log_format_resolve("json", production=False, stream=terminal) == "json"
        assert log_format_resolve("plain", production=True, stream=file) == "plain"


def _log_from_a_child(home: Path, *, on_terminal: bool, **env: str | None) -> str:
    """What a child process that logs one line writes to its stderr."""
    defaults: dict[str, str | None] = {"DATABASE_URL": None, "CAIRN_LOG_FORMAT": None}
    child_env = manage_env(
        **{**defaults, **env},
        CAIRN_HOME=str(home),
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    argv = [sys.executable, "-c", LOG_ONE_LINE]
    if not on_terminal:
        result = subprocess.run(
            argv, cwd=REPO_ROOT, env=child_env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stderr
    controller, far_end = os.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        child = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=child_env, stdout=subprocess.DEVNULL, stderr=far_end
        )
        os.close(far_end)
        assert child.wait(timeout=120) == 0
        reader.join(timeout=10)
    finally:
        os.close(controller)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_a_process_logging_to_a_terminal_writes_plain_lines(tmp_path: Path) -> None:
    output = _log_from_a_child(tmp_path / "home", on_terminal=True)

    lines = [line for line in output.splitlines() if "cairn.edges" in line]
    assert len(lines) == 1, output
    assert PLAIN_LINE.match(lines[0]), lines[0]


def test_a_process_logging_to_a_pipe_writes_json(tmp_path: Path) -> None:
    output = _log_from_a_child(tmp_path / "home", on_terminal=False)

    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    entry = next(entry for entry in entries if entry["logger"] == "cairn.edges")
    assert entry["level"] == "INFO"
    assert entry["message"] == "hello from the test"


def test_plain_on_request_even_into_a_pipe(tmp_path: Path) -> None:
    output = _log_from_a_child(tmp_path / "home", on_terminal=False, CAIRN_LOG_FORMAT="plain")

    assert any(PLAIN_LINE.match(line) for line in output.splitlines()), output


def test_an_unknown_format_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env=manage_env(CAIRN_HOME=str(tmp_path / "home"), CAIRN_LOG_FORMAT="pretty"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "CAIRN_LOG_FORMAT='pretty' is not auto, json or plain." in result.stderr


def test_a_plain_line_shows_the_request_id_only_when_there_is_one() -> None:
    formatter = PlainFormatter()
    record = logging.LogRecord("cairn.requests", logging.INFO, __file__, 1, "GET /", (), None)
    assert formatter.format(record).endswith(" INFO cairn.requests: GET /")

    stamped = logging.LogRecord("cairn.requests", logging.INFO, __file__, 1, "GET /", (), None)
    with request_id_bound("abc123"):
        RequestIdFilter().filter(stamped)
    assert formatter.format(stamped).endswith(" INFO cairn.requests [abc123]: GET /")
