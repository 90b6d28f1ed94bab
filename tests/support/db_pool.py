"""A tiny connection pool for tests, and PostgreSQL's own count of the connections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection as _connection

# The postgresql backend's pool API (Django 5.1+), which the stubs do not know.
connection: Any = _connection
# The connections of the pool under test carry this name, so that PostgreSQL's count
# leaves out whatever else the test process still holds (another thread's connection
# from an earlier test, the live server's own checks).
POOL_APPLICATION_NAME = "cairn-pool-under-test"


@contextmanager
def pool_of(max_size: int, timeout: float) -> Iterator[Any]:
    """This process's pool replaced by one of ``max_size`` connections (the live server
    runs in this process, so its request threads borrow from it)."""
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("pool")
    assert saved, "the suite runs with the pool on (CAIRN_DB_POOL_MAX_SIZE > 0)"
    connection.close()
    connection.close_pool()
    options["pool"] = {"min_size": 0, "max_size": max_size, "timeout": timeout}
    options["application_name"] = POOL_APPLICATION_NAME
    try:
        yield connection.pool
    finally:
        connection.close()
        connection.close_pool()
        options["pool"] = saved
        del options["application_name"]


def raw_connection() -> psycopg.Connection[Any]:
    """A connection of the test's own, outside Django and its pool."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    )


def client_backends(observer: psycopg.Connection[Any], *left_out: int) -> tuple[int, int]:
    """(server-side connections of the pool under test, those waiting on a lock), the
    test's own left out."""
    row = observer.execute(
        "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock')"
        " FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND application_name = %s"
        " AND pid <> ALL(%s)",
        [POOL_APPLICATION_NAME, [observer.info.backend_pid, *left_out]],
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
