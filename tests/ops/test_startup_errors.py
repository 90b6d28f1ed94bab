"""Misconfiguration ends with one clear line naming the fix, a non-zero exit, no traceback."""

from __future__ import annotations

import socket

import pytest

from tests.support.processes import (
    STRONG_SECRET_KEY,
    error_lines,
    free_port,
    manage_env,
    run_manage,
)

SYSTEM_POSTGRES_WITHOUT_PGVECTOR = "postgres://postgres@127.0.0.1:5432/test"


def assert_one_line_error(result, *fragments: str) -> None:
    lines = error_lines(result)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("cairn: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_database_url_pointing_nowhere() -> None:
    port = free_port()  # nothing listens there
    env = manage_env(
        DATABASE_URL=f"postgres://cairn:secret@127.0.0.1:{port}/cairn", SECRET_KEY=STRONG_SECRET_KEY
    )

    result = run_manage("serve", "--port", str(free_port()), env=env)

    assert_one_line_error(
        result, f"cannot connect to the database at 127.0.0.1:{port}/cairn", "Fix:", "DATABASE_URL"
    )
    assert "secret" not in result.stderr, "the password must not be printed"


def test_database_without_the_vector_extension() -> None:
    # The machine's own PostgreSQL 15 has no pgvector installed.
    with socket.create_connection(("127.0.0.1", 5432), timeout=2):
        pass
    env = manage_env(DATABASE_URL=SYSTEM_POSTGRES_WITHOUT_PGVECTOR, SECRET_KEY=STRONG_SECRET_KEY)

    result = run_manage("serve", "--port", str(free_port()), env=env)

    assert_one_line_error(result, "has no 'vector' extension", "Fix: install pgvector")


def test_port_already_taken() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        result = run_manage("serve", "--port", str(port), env=manage_env())

    assert_one_line_error(result, f"port {port} on 127.0.0.1 is already in use", "CAIRN_PORT")


@pytest.mark.parametrize(
    ("secret_key", "problem"),
    [
        (None, "SECRET_KEY is not set"),
        ("short-key", "shorter than 50 characters"),
        ("django-insecure-" + "x" * 60, "insecure development key"),
        ("ab" * 40, "fewer than 5 distinct characters"),
    ],
)
def test_production_refuses_a_missing_or_weak_secret_key(secret_key, problem) -> None:
    env = manage_env(DATABASE_URL=SYSTEM_POSTGRES_WITHOUT_PGVECTOR, SECRET_KEY=secret_key)

    result = run_manage("check", env=env)

    assert_one_line_error(result, problem, "set SECRET_KEY")


def test_preflight_reports_every_check_on_a_good_setup() -> None:
    result = run_manage("preflight", env=manage_env())

    assert result.returncode == 0, result.stderr
    assert "ok  database: PostgreSQL 18" in result.stdout
    assert "ok  vector_extension: pgvector 0.8" in result.stdout
    assert "ok  broker: filesystem broker" in result.stdout
