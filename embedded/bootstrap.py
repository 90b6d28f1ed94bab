"""Process start-up for the embedded mode, shared by manage.py, ASGI and Celery.

Kept free of Django imports: it runs before settings are loaded, because the
settings read the socket location of the embedded server.
"""

from __future__ import annotations

import atexit
import os

from embedded.postgres import EmbeddedPostgres


def embedded_mode() -> bool:
    return not os.environ.get("DATABASE_URL")


def ensure_embedded_database(*, stop_at_exit: bool) -> None:
    """In embedded mode, make sure the embedded PostgreSQL runs.

    ``stop_at_exit``: stop it when this process exits, if this process started it
    (manage.py does; web and worker processes leave it to their supervisor).
    """
    if not embedded_mode():
        return
    _require_portable_pgvector()
    server = EmbeddedPostgres.default()
    started = server.ensure_running()
    if started and stop_at_exit:
        atexit.register(server.stop)


def _require_portable_pgvector() -> None:
    """Refuse to start on a CPU the shipped pgvector would crash on, saying what to run."""
    from embedded import pgvector_portable

    try:
        root = pgvector_portable.pginstall()
    except ImportError:
        return  # EmbeddedPostgres reports the missing wheel in its own words
    if pgvector_portable.needed(root):
        raise SystemExit(
            "The embedded PostgreSQL's pgvector was built for CPUs with AVX-512, which this "
            "one lacks: it would crash on the first vector search. Run `make install` "
            "(or `.venv/bin/python -m embedded.pgvector_portable`) to rebuild it for this CPU."
        )
