"""The request id across Celery: sent as a message header, bound while the task runs.

A task queued while a request id is bound (a web request, an answer) carries it in
the ``cairn_request_id`` header, so the worker's log lines for that task share the
id of the request that caused it. A task without one (beat's periodic tasks) gets
an id of its own, so its lines still belong together. Imported by config.celery_app.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun

from observability.logging import (
    request_id_clean,
    request_id_get,
    request_id_new,
    request_id_reset,
    request_id_set,
)

HEADER = "cairn_request_id"

# prerun and postrun run in the thread that runs the task; tokens are kept per task id.
_tokens: dict[str, Token[str | None]] = {}


@before_task_publish.connect(weak=False)
def request_id_to_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    value = request_id_get()
    if value is not None and headers is not None:
        headers.setdefault(HEADER, value)


@task_prerun.connect(weak=False)
def request_id_bind_for_task(task_id: str, task: Any, **_: Any) -> None:
    request = task.request
    # Checked like an incoming X-Request-ID: a message is input too.
    value = request_id_clean(getattr(request, HEADER, None))
    if value is None and request.is_eager:  # run inline: keep the caller's id
        value = request_id_get()
    _tokens[task_id] = request_id_set(value or request_id_new())


@task_postrun.connect(weak=False)
def request_id_unbind_after_task(task_id: str, **_: Any) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        request_id_reset(token)
