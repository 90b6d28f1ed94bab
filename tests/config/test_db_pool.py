"""The connection cap of a process (issue 17): Django's psycopg pool, sized by
CAIRN_DB_POOL_MAX_SIZE. Requests past the cap wait for a free connection instead of
failing with PostgreSQL's "too many clients"; a wait past CAIRN_DB_POOL_TIMEOUT is a
503 database_busy. Against the real ASGI server and the suite's embedded PostgreSQL,
its connections counted in pg_stat_activity.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from kb.models import ApiKey
from kb.services.api_keys import api_key_create
from tests.factories import make_account, make_knowledge_base, make_user
from tests.support.db_pool import client_backends, pool_of, raw_connection
from tests.support.live_server import running_asgi_server
from tests.support.processes import REPO_ROOT, STRONG_SECRET_KEY, manage_env

KNOWLEDGE_BASES = "/api/v1/knowledge-bases"
WAIT_BOUND_SECONDS = 60  # how long the test waits for a state; never asserted on


# --- configured from the environment ----------------------------------------------------

_PRINT_DATABASE = (
    "import json, django; django.setup(); from django.conf import settings; "
    "db = settings.DATABASES['default']; "
    "print(json.dumps({'options': db['OPTIONS'], 'conn_max_age': db['CONN_MAX_AGE']}))"
)


def _database_in_child(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    overrides: dict[str, str | None] = {
        "DATABASE_URL": "postgres://cairn@db.invalid:5432/cairn",  # never connected to
        "SECRET_KEY": STRONG_SECRET_KEY,
        "CAIRN_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CAIRN_DB_POOL_MAX_SIZE": None,
        "CAIRN_DB_POOL_TIMEOUT": None,
        "CAIRN_DB_CONN_MAX_AGE": None,
    }
    child_env = manage_env(**{**overrides, **env})
    return subprocess.run(
        [sys.executable, "-c", _PRINT_DATABASE], cwd=REPO_ROOT, env=child_env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _database_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_pool_is_sized_and_timed_from_the_environment(tmp_path) -> None:
    sized = _database_of(
        _database_in_child(tmp_path, CAIRN_DB_POOL_MAX_SIZE="7", CAIRN_DB_POOL_TIMEOUT="3.5")
    )
    default = _database_of(_database_in_child(tmp_path))

    assert sized["options"]["pool"] == {"min_size": 0, "max_size": 7, "timeout": 3.5}
    assert sized["options"]["connect_timeout"] == 5
    assert sized["conn_max_age"] == 0
    assert default["options"]["pool"] == {"min_size": 0, "max_size": 20, "timeout": 30.0}


def test_a_pool_size_of_zero_is_a_connection_per_request_as_before(tmp_path) -> None:
    off = _database_of(
        _database_in_child(tmp_path, CAIRN_DB_POOL_MAX_SIZE="0", CAIRN_DB_CONN_MAX_AGE="60")
    )

    assert "pool" not in off["options"]
    assert off["conn_max_age"] == 60


def test_persistent_connections_and_the_pool_are_refused_together_with_the_fix(tmp_path) -> None:
    result = _database_in_child(tmp_path, CAIRN_DB_CONN_MAX_AGE="60")

    assert result.returncode != 0
    assert "CAIRN_DB_CONN_MAX_AGE=60 keeps connections" in result.stderr
    assert "CAIRN_DB_POOL_MAX_SIZE=0" in result.stderr


# --- the cap, on the real server -----------------------------------------------------------


def _get(url: str, key: str = "", cookie: str = "") -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {"Cookie": cookie}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_BOUND_SECONDS) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_BOUND_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_requests_past_the_cap_wait_for_a_connection_and_all_succeed() -> None:
    """Six requests at once, two connections: each request's first query is held on a
    table lock, so that all six are in flight together; two hold the pool's connections,
    four wait in the pool. Once the lock goes, all six are answered, and the server never
    had more than two connections to the database."""
    account = make_account("Ledgerly")
    make_knowledge_base(account, "Ledgerly help")
    _, key = api_key_create(account=account, name="pool", scopes=["read"])
    requests = 6
    with running_asgi_server() as server, pool_of(2, timeout=WAIT_BOUND_SECONDS) as pool:
        observer, locker = raw_connection(), raw_connection()
        own = (locker.info.backend_pid,)
        samples: list[int] = []
        results: list[int] = []
        try:
            locker.autocommit = False
            locker.execute(f'LOCK TABLE "{ApiKey._meta.db_table}" IN ACCESS EXCLUSIVE MODE')
            threads = [
                threading.Thread(
                    target=lambda: results.append(_get(server.url + KNOWLEDGE_BASES, key)[0])
                )
                for _ in range(requests)
            ]
            for thread in threads:
                thread.start()

            def all_in_flight() -> bool:
                total, locked = client_backends(observer, *own)
                samples.append(total)
                return locked == 2 and pool.get_stats()["requests_waiting"] == requests - 2

            _until(all_in_flight, "two requests on the lock and four waiting in the pool")
            locker.rollback()  # the lock goes; the requests run, two at a time
            while any(thread.is_alive() for thread in threads):
                samples.append(client_backends(observer, *own)[0])
                time.sleep(0.01)
            for thread in threads:
                thread.join()
            # A request's connection goes back when Django's request_finished runs, which
            # can be just after the client has read the response.
            _until(
                lambda: pool.get_stats()["pool_available"] == pool.get_stats()["pool_size"],
                "every connection back in the pool",
            )
        finally:
            locker.close()
            observer.close()
        stats = pool.get_stats()

    assert results == [200] * requests
    assert max(samples) == 2
    assert stats["pool_max"] == 2
    assert stats["pool_size"] == stats["pool_available"]  # every connection given back


@pytest.mark.django_db(transaction=True)
def test_a_wait_past_the_pool_timeout_is_a_json_503_database_busy() -> None:
    account = make_account("Ledgerly")
    make_knowledge_base(account, "Ledgerly help")
    _, key = api_key_create(account=account, name="pool", scopes=["read"])
    with running_asgi_server() as server, pool_of(1, timeout=0.3):
        connection.ensure_connection()  # this thread holds the one connection
        try:
            status, headers, body = _get(server.url + KNOWLEDGE_BASES, key)
        finally:
            connection.close()
        answered, _, _ = _get(server.url + KNOWLEDGE_BASES, key)  # given back: served again

    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert headers["Retry-After"] == "2"
    error = json.loads(body)["error"]
    assert error["code"] == "database_busy"
    assert "no database connection became free" in error["message"]
    assert error["retry_after"] == 2
    assert answered == 200


@pytest.mark.django_db(transaction=True)
def test_a_page_outside_the_api_waiting_past_the_timeout_is_a_503_not_a_500() -> None:
    user: Any = make_user(account=make_account("Ledgerly"))
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    connection.close()
    with running_asgi_server() as server, pool_of(1, timeout=0.3):
        connection.ensure_connection()
        try:
            status, headers, body = _get(server.url + "/chat/", cookie=cookie)
        finally:
            connection.close()

    assert status == 503
    assert headers["Retry-After"] == "2"
    assert headers["Content-Type"].startswith("text/plain")
    assert b"no database connection became free" in body
