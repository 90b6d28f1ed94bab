"""The set-up every benchmark run from the command line shares: its own embedded database.

A benchmark keeps its data in a folder of its own (``home``), never in the project's
``.cairn``, and ignores any DATABASE_URL/REDIS_URL/CELERY_BROKER_URL of the shell, so a
run measures the embedded default and cannot touch a real deployment.
"""

from __future__ import annotations

import os
from pathlib import Path


def embedded_django(home: Path) -> None:
    """Point Cairn at ``home``, start its embedded PostgreSQL (stopped at exit), set
    Django up and migrate. The caller has put the repository on sys.path."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update({"CAIRN_HOME": str(home), "DJANGO_SETTINGS_MODULE": "config.settings",
                       "CAIRN_LOG_LEVEL": "WARNING"})  # fmt: skip
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    from embedded.bootstrap import ensure_embedded_database

    ensure_embedded_database(stop_at_exit=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
