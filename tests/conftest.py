"""Test session set-up: a real embedded PostgreSQL with pgvector.

The tests use the embedded server of CAIRN_HOME (like `make run`) but their own
database (test_cairn), created and dropped by pytest-django. The server is
started here if needed and stopped after the session only if the tests started
it, so a running `make run` is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.bootstrap import ensure_embedded_database

REPO_ROOT = Path(__file__).resolve().parent.parent

if os.environ.get("DATABASE_URL"):
    raise pytest.UsageError("the tests run on the embedded PostgreSQL: unset DATABASE_URL")
ensure_embedded_database(stop_at_exit=True)


@pytest.fixture(autouse=True)
def _fast_passwords_and_private_media(settings, tmp_path: Path) -> Iterator[None]:
    """Cheap password hashing, and uploads into a folder of the test's own."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    yield
