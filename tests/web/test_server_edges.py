"""What a user sees of the server itself: its start-up line, the broker, the favicon.

* The PII log filter leaves the server's own listen address alone ("Uvicorn running
  on http://127.0.0.1:8000", not "http://[IP_1]:8000"), and nothing else.
* The filesystem broker connects without kombu's "No hostname was supplied" warning
  and keeps its exchange bindings under CAIRN_HOME, not in the working directory.
* ``/favicon.ico`` is a real icon with a long cache header, not a 404.
"""

from __future__ import annotations

import io
import logging
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from django.conf import settings

from kb.guard.pii_logs import LogPiiFilter
from observability.logging import JsonFormatter, RequestIdFilter
from tests.support.processes import REPO_ROOT, manage_env

LOGGERS = ("uvicorn.error", "celery.worker.consumer.connection", "cairn.requests", "tests.edges")


@pytest.fixture
def log_through_our_handler() -> Iterator[io.StringIO]:
    """The lines of ``LOGGERS`` through a handler made like LOGGING's console handler:
    the PII filter the settings name, then the request id, then JSON. The handler sits
    on the loggers themselves: other tests may have configured uvicorn's own logging,
    which stops its records on their way to the root."""
    assert settings.LOGGING["filters"]["pii"]["()"] == "kb.guard.pii_logs.LogPiiFilter"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(LogPiiFilter())
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(logger.level, logger.propagate, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate, logger.disabled = False, False
    try:
        yield stream
    finally:
        for logger, (level, propagate, disabled) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled


async def _nothing(scope, receive, send) -> None:  # an ASGI app that is never called
    raise AssertionError("not served")


def _uvicorn_start_up_line(host: str, stream: io.StringIO) -> str:
    """The line uvicorn's own code logs once it listens on ``host``."""
    config = uvicorn.Config(_nothing, host=host, port=8000, log_config=None)
    config.load()
    uvicorn.Server(config)._log_started_message([])
    lines = [line for line in stream.getvalue().splitlines() if "Uvicorn running on" in line]
    assert lines, stream.getvalue()
    return lines[-1]


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),  # make run
        ("0.0.0.0", "http://0.0.0.0:8000"),  # the container image  # noqa: S104
        ("10.1.2.3", "http://10.1.2.3:8000"),  # a private network
        ("::1", "http://[::1]:8000"),
    ],
)
def test_the_start_up_line_shows_where_the_server_listens(
    log_through_our_handler, host, shown
) -> None:
    line = _uvicorn_start_up_line(host, log_through_our_handler)

    assert f'"message": "Uvicorn running on {shown} (Press CTRL+C to quit)"' in line
    assert "[IP_" not in line
    # uvicorn's colour-coded copy of the template is terminal decoration, not data.
    assert "color_message" not in line


def test_a_public_listen_address_is_still_redacted(log_through_our_handler) -> None:
    line = _uvicorn_start_up_line("58.74.121.78", log_through_our_handler)

    assert "58.74.121.78" not in line
    assert "Uvicorn running on http://[IP_1]:8000" in line


def test_addresses_in_the_servers_other_lines_are_still_redacted(log_through_our_handler):
    # uvicorn.error also logs WebSocket handshakes with the client's address.
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:53211", "/ws"
    )
    logging.getLogger("cairn.requests").info("request from 10.1.2.3 and 127.0.0.1")
    # The start-up line's wording in a line of another logger is no exemption.
    logging.getLogger("tests.edges").info("Uvicorn running on http://%s:8000", "10.1.2.3")

    text = log_through_our_handler.getvalue()
    assert "127.0.0.1" not in text
    assert "10.1.2.3" not in text
    assert text.count("[IP_1]") == 3


def test_the_workers_broker_line_keeps_a_private_broker_address(log_through_our_handler):
    connection = logging.getLogger("celery.worker.consumer.connection")
    connection.info("Connected to %s", "redis://10.1.2.3:6379/0")
    connection.info("Connected to %s", "redis://58.74.121.78:6379/0")

    text = log_through_our_handler.getvalue()
    assert "Connected to redis://10.1.2.3:6379/0" in text
    assert "58.74.121.78" not in text


# --- the filesystem broker -----------------------------------------------------

# Queues one task the way the web process does, through a Celery app configured
# from the settings (like config/celery_app.py, without its database start-up), and
# opens the connection the way the worker does for its banner.
SEND_ONE_TASK = (
    "import django, logging\n"
    "django.setup()\n"
    "from celery import Celery\n"
    "app = Celery('edges')\n"
    "app.config_from_object('django.conf:settings', namespace='CELERY')\n"
    "app.send_task('tests.edges.nothing', args=[1])\n"
    "with app.connection_for_write() as connection:\n"
    "    connection.info()\n"
    "logging.getLogger('tests.edges').warning('sent to %s', app.conf.broker_url)\n"
)


def test_the_filesystem_broker_is_quiet_and_keeps_its_files_in_cairn_home(tmp_path: Path):
    home, workdir = tmp_path / "home", tmp_path / "workdir"
    workdir.mkdir()
    env = manage_env(
        CAIRN_HOME=str(home),
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(REPO_ROOT),
        DATABASE_URL=None,
        REDIS_URL=None,
        CELERY_BROKER_URL=None,
        CAIRN_LOG_FORMAT="json",
    )

    result = subprocess.run(
        [sys.executable, "-c", SEND_ONE_TASK],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "sent to filesystem://localhost" in result.stderr, "the child logs through LOGGING"
    assert "No hostname was supplied" not in result.stderr
    broker = home / "broker"
    assert (broker / "control" / "celery.exchange").is_file()
    assert list((broker / "queue").iterdir()), "the task message is in the queue folder"
    assert list(workdir.iterdir()) == [], "nothing is written into the working directory"


def test_the_repository_holds_no_broker_control_folder() -> None:
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()

    assert not (REPO_ROOT / "control" / "celery.exchange").exists()
    assert "/control/" in ignored


# --- favicon -------------------------------------------------------------------


def test_the_favicon_is_a_real_icon_cached_for_long(client, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert "public" in response["Cache-Control"]
    max_age = int(response["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert max_age >= 7 * 24 * 3600
    assert not caplog.records, "no 'Not Found' in the server log"

    icon = response.content
    reserved, kind, count = struct.unpack("<HHH", icon[:6])
    assert (reserved, kind) == (0, 1) and count >= 2
    for index in range(count):
        width, _, _, _, _, _, size, offset = struct.unpack(
            "<BBBBHHII", icon[6 + 16 * index : 22 + 16 * index]
        )
        assert width in (16, 32, 48)
        assert icon[offset : offset + 8] == b"\x89PNG\r\n\x1a\n"
        assert offset + size <= len(icon)


def test_the_favicon_answers_head_and_refuses_post(client) -> None:
    assert client.head("/favicon.ico").status_code == 200
    assert client.post("/favicon.ico").status_code == 405
