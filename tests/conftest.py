"""Test session set-up: a real embedded PostgreSQL with pgvector.

The tests use the embedded server of CAIRN_HOME (like `make run`) but their own
database (test_cairn), created and dropped by pytest-django. The server is
started here if needed and stopped after the session only if the tests started
it, so a running `make run` is left alone.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedded.bootstrap import ensure_embedded_database

REPO_ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("DATABASE_URL"):
    raise pytest.UsageError("the tests run on the embedded PostgreSQL: unset DATABASE_URL")
ensure_embedded_database(stop_at_exit=True)


@pytest.fixture(autouse=True, scope="session")
def _task_messages_stay_in_memory():
    """Tasks queued by tests go to an in-memory broker nobody consumes, never to the
    embedded broker folder of a running `make run`. Tests that need a worker switch
    to Redis with tests.support.worker.redis_queue()."""
    from config.celery_app import app
    from tests.support.worker import use_broker

    saved = app.conf.broker_url
    use_broker("memory://")
    yield
    use_broker(saved)


@pytest.fixture(autouse=True, scope="session")
def _embedded_servers_of_child_processes_stopped(tmp_path_factory) -> Iterator[None]:
    """Child processes given a CAIRN_HOME under the test's tmp_path (a `manage.py` run, a
    worker) start an embedded PostgreSQL there that outlives them, by design for a
    worker; at the end of the session each one still running gets a fast shutdown."""
    yield
    try:
        pid_files = list(tmp_path_factory.getbasetemp().glob("*/**/pgdata/postmaster.pid"))
    except OSError:
        return
    for pid_file in pid_files:
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        except (OSError, ValueError, IndexError):
            pass  # already gone, or a file half written


@pytest.fixture(autouse=True)
def _fast_passwords_and_private_media(settings, tmp_path: Path) -> Iterator[None]:
    """Cheap password hashing, uploads into a folder of the test's own, and an empty
    cache: rate-limit counters, breakers and cached answers never leak between tests."""
    from django.core.cache import cache

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    yield


@pytest.fixture
def kb(db):
    """A knowledge base of its own account."""
    from tests.factories import make_account, make_knowledge_base

    return make_knowledge_base(make_account("Ledgerly"), "Ledgerly help")


@pytest.fixture
def fake_openai(settings):
    """OpenAI's API on loopback (tests/support/fake_openai.py); the real SDK points at it."""
    from kb.embeddings.registry import reset_embedders
    from tests.support.fake_openai import running_fake_openai

    with running_fake_openai() as server:
        settings.CAIRN_OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "sk-test"
        reset_embedders()
        yield server
    reset_embedders()
