"""The Celery application, configured from Django settings (CELERY_* names).

Tasks bind to it explicitly (``@app.task``) rather than through ``shared_task``
magic, so importing a tasks module is all it takes to use it.
"""

from __future__ import annotations

import os

from celery import Celery

# Tasks carry the request id of whatever queued them (signal handlers, connected on import).
import observability.celery_request_id  # noqa: F401
from config import broker_filesystem
from embedded.bootstrap import ensure_embedded_database

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# filesystem:// (the embedded mode's broker) without kombu's half-written messages.
broker_filesystem.register()
# Workers and beat started on their own in embedded mode find their database running.
ensure_embedded_database(stop_at_exit=False)

app = Celery("cairn")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
