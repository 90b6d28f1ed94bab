"""Queueing a Celery task by name once the current transaction commits.

Services enqueue work through ``enqueue_on_commit("app.tasks.some_task", ...)`` and never
import a tasks module: tasks import services, so the reverse import would be a cycle. The
task is looked up in the Celery app's registry by its name (the name every ``@app.task``
in Cairn states), which keeps its own options (queue, retries) and Celery's eager mode in
tests. A task not registered in this process (its module not imported yet) is found by
importing the apps' task modules once, the way a worker does at start-up.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import transaction

from config.celery_app import app

logger = logging.getLogger(__name__)


class UnknownTaskError(LookupError):
    """No Celery task has this name in any app's tasks module."""


def task_by_name(name: str) -> Task:
    task = app.tasks.get(name)
    if task is None:
        app.loader.import_default_modules()  # autodiscovered tasks modules, as a worker
        task = app.tasks.get(name)
    if task is None:
        raise UnknownTaskError(f"no Celery task is named {name!r}")
    return task


def enqueue_on_commit(name: str, /, *args: Any, quiet: bool = False, **kwargs: Any) -> None:
    """Queue the task ``name`` with these arguments when the transaction commits (at once
    outside one); nothing is queued if it rolls back.

    The name is checked now, so a typo fails where it is written, not after the commit.
    ``quiet=True`` logs a broker that cannot be reached instead of raising, for work that
    must never fail what happened to trigger it (an alert after an answer, say); the
    callers that use it have a sweep or a lazy path that makes up for a lost message.
    """
    task = task_by_name(name)

    def enqueue() -> None:
        try:
            task.delay(*args, **kwargs)
        except Exception:
            if not quiet:
                raise
            logger.exception("could not queue %s", name)

    transaction.on_commit(enqueue)
