"""Start-up and readiness checks: database, vector extension, broker, listening port.

Each check returns a ``CheckResult``; ``/readyz`` reports them all, and
``manage.py serve`` / ``manage.py preflight`` turn the first failure into one
line that names the fix (``StartupError``), never a traceback.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg


class StartupError(Exception):
    """Cairn cannot start; the message is one line that says what to fix."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "latency_ms": round(self.latency_ms, 1)}


def _timed(name: str, check: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except StartupError as exc:
        detail, ok = str(exc), False
    return CheckResult(name, ok, detail, (time.perf_counter() - started) * 1000)


def _database_label() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if settings.CAIRN_EMBEDDED:
        return f"the embedded database ({settings.CAIRN_HOME / 'pgdata'})"
    return f"the database at {db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def describe_database_error(exc: BaseException) -> str | None:
    """One line for a failed database connection, or None if ``exc`` is something else."""
    import psycopg
    from django.db.utils import OperationalError

    if not isinstance(exc, OperationalError | psycopg.OperationalError):
        return None
    from django.conf import settings

    fix = (
        "run `make run` again, or `python manage.py embedded_db status`"
        if settings.CAIRN_EMBEDDED
        else "start that PostgreSQL server or correct DATABASE_URL"
    )
    return f"cannot connect to {_database_label()}: {_first_line(exc)}. Fix: {fix}."


def check_database() -> CheckResult:
    def probe() -> str:
        from django.db import connection

        try:
            # A connection of its own, not one from the pool: the pool would retry a
            # server that is not there until CAIRN_DB_POOL_TIMEOUT, logging each try,
            # where a direct connection fails once, after CAIRN_DB_CONNECT_TIMEOUT.
            with (
                psycopg.connect(**connection.get_connection_params()) as direct,
                direct.cursor() as cursor,
            ):
                cursor.execute("SELECT current_setting('server_version')")
                row = cursor.fetchone()
        except Exception as exc:
            message = describe_database_error(exc)
            if message is None:
                raise
            raise StartupError(message) from exc
        return f"PostgreSQL {row[0] if row else '?'}"

    return _timed("database", probe)


def check_vector_extension() -> CheckResult:
    def probe() -> str:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT default_version, installed_version FROM pg_available_extensions "
                "WHERE name = 'vector'"
            )
            row = cursor.fetchone()
        if row is None:
            raise StartupError(
                f"{_database_label()} has no 'vector' extension. Fix: install pgvector on that "
                "server (or use the pgvector/pgvector image), or unset DATABASE_URL to use the "
                "embedded database."
            )
        default_version, installed_version = row
        if installed_version is None:
            return f"pgvector {default_version} available (installed by migrate)"
        return f"pgvector {installed_version}"

    return _timed("vector_extension", probe)


def check_broker() -> CheckResult:
    def probe() -> str:
        from django.conf import settings

        url: str = settings.CELERY_BROKER_URL
        if url.startswith("filesystem://"):
            folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
            folder.mkdir(parents=True, exist_ok=True)
            probe_file = folder / ".readyz"
            try:
                probe_file.write_text("ok")
                probe_file.unlink()
            except OSError as exc:
                raise StartupError(f"the broker folder {folder} is not writable: {exc}") from exc
            return f"filesystem broker at {folder}"
        from kombu import Connection

        try:
            with Connection(url, connect_timeout=3) as conn:
                conn.ensure_connection(max_retries=1, timeout=3)
                transport = conn.transport_cls
        except Exception as exc:
            raise StartupError(
                f"cannot reach the broker ({_first_line(exc)}). Fix: start it or correct "
                "REDIS_URL / CELERY_BROKER_URL."
            ) from exc
        return f"{transport} broker reachable"

    return _timed("broker", probe)


def check_port_free(host: str, port: int) -> CheckResult:
    def probe() -> str:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # Same option uvicorn uses, so a port in TIME_WAIT is not reported as taken.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise StartupError(
                        f"port {port} on {host} is already in use. Fix: stop the program using "
                        f"it, or choose another port with CAIRN_PORT=8001 (or --port)."
                    ) from exc
                raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}.") from exc
        return f"{host}:{port} is free"

    return _timed("port", probe)


def readiness_checks() -> list[CheckResult]:
    """What /readyz reports: the process can serve real traffic."""
    database = check_database()
    checks = [database]
    if database.ok:
        checks.append(check_vector_extension())
    else:
        checks.append(CheckResult("vector_extension", False, "database unreachable", 0.0))
    checks.append(check_broker())
    return checks


def require(result: CheckResult) -> CheckResult:
    """Raise StartupError for a failed check; used at start-up."""
    if not result.ok:
        raise StartupError(result.detail)
    return result
