"""Running the tasks a test queues, in the test itself (no worker)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from config.celery_app import app


@contextmanager
def tasks_run_inline() -> Iterator[None]:
    """Tasks queued with ``.delay()`` run at once, in this process and thread (Celery's
    eager mode), and their exceptions reach the test. Combine with pytest-django's
    ``django_capture_on_commit_callbacks(execute=True)`` for tasks queued on commit."""
    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved
