"""Log lines as JSON objects, and the request id that ties one request's lines together.

The request id lives in a context variable. The web middleware binds it for each
request (``observability/request_id.py``); answer threads get it because the relay copies
the context into them (``chat/streaming.py``); Celery tasks get it from a message
header (``observability/celery_request_id.py``). ``RequestIdFilter`` stamps it on every
record a handler emits, and ``JsonFormatter`` writes one object per line: ``ts``,
``level``, ``logger``, ``message``, ``request_id``, the record's ``extra`` fields
and ``exc``; ``PlainFormatter`` writes one line of text, for a terminal
(``CAIRN_LOG_FORMAT=auto``, the default, picks it when the log stream is one).
Redacting PII is ``kb.guard.pii_logs.LogPiiFilter``'s job, on the same handler,
named by its dotted path in ``logging_config`` so that importing the settings imports
no app.
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any, TextIO

LOG_FORMATS = ("auto", "json", "plain")
REQUEST_ID_MAX_LENGTH = 64
# Letters, digits and . _ : - only: an id a client sends is written into every log
# line of its request, so it must not be able to break a line or forge another.
_REQUEST_ID_RE = re.compile(rf"[A-Za-z0-9._:-]{{1,{REQUEST_ID_MAX_LENGTH}}}")

_request_id: ContextVar[str | None] = ContextVar("cairn_request_id", default=None)


def request_id_get() -> str | None:
    """The request id bound in this context (a web request, an answer, a task), if any."""
    return _request_id.get()


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_clean(value: str | None) -> str | None:
    """``value`` if it is acceptable as a request id from outside, else None."""
    if value and _REQUEST_ID_RE.fullmatch(value):
        return value
    return None


def request_id_set(value: str | None) -> Token[str | None]:
    """Bind ``value`` until ``request_id_reset(token)``; for code that cannot use a
    ``with`` block (Celery's prerun and postrun signals)."""
    return _request_id.set(value)


def request_id_reset(token: Token[str | None]) -> None:
    try:
        _request_id.reset(token)
    except ValueError:
        # The token belongs to another context: a streamed response's generator
        # finalised by the garbage collector, whose context ends with it anyway.
        pass


@contextmanager
def request_id_bound(value: str) -> Iterator[str]:
    """Bind ``value`` as the request id for the block (and threads given its context)."""
    token = request_id_set(value)
    try:
        yield value
    finally:
        request_id_reset(token)


class RequestIdFilter(logging.Filter):
    """Stamp the bound request id on the record (left unset when none is bound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        value = request_id_get()
        if value is not None and not hasattr(record, "request_id"):
            record.request_id = value
        return True


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
    # uvicorn's copy of its message template with terminal colour codes: not data.
    "color_message",
}
_OMIT = object()


def _plain(value: Any) -> Any:
    """``value`` as JSON data, or _OMIT. Objects with no plain form (Django's request
    in ``django.request`` records) are left out: their text could carry anything."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, Decimal | uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        items = (_plain(item) for item in value)
        return [item for item in items if item is not _OMIT]
    if isinstance(value, dict):
        pairs = ((str(key), _plain(item)) for key, item in value.items())
        return {key: item for key, item in pairs if item is not _OMIT}
    return _OMIT


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO-8601, UTC), level, logger, message, request_id,
    the ``extra`` fields, and exc (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key in RECORD_ATTRIBUTES or key.startswith("_"):
                continue
            plain = _plain(value)
            if plain is not _OMIT:
                entry[key if key not in entry else f"extra_{key}"] = plain
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """For reading at a terminal: time, level, logger, [request id] (when there is
    one), message; the traceback on the lines after."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        values = {**vars(record), "request_tag": f" [{request_id}]" if request_id else ""}
        return self._style._fmt % values


def log_format_resolve(log_format: str, *, production: bool, stream: TextIO) -> str:
    """``json`` or ``plain`` for the ``CAIRN_LOG_FORMAT`` setting: ``auto`` is plain text
    when the logs go to a terminal in embedded mode (``make run``), JSON otherwise (a
    file, a pipe, a container's log collector, production)."""
    if log_format != "auto":
        return log_format
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        terminal = False
    return "plain" if terminal and not production else "json"


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING: one stderr handler, PII redacted, request ids stamped."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "observability.logging.JsonFormatter"},
            "plain": {"()": "observability.logging.PlainFormatter"},
        },
        "filters": {
            # PII (emails, phone numbers, cards, IBANs, SSNs, IP addresses) never reaches
            # the logs: in messages, string extra fields and tracebacks alike.
            "pii": {"()": "kb.guard.pii_logs.LogPiiFilter"},
            # After the PII filter: the id is ours (or checked), and must stay whole.
            "request_id": {"()": "observability.logging.RequestIdFilter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["pii", "request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "pgserver": {"level": "WARNING"},
            # uvicorn's lines go through our handler (JSON, PII filter) instead of its own.
            # Its access log is off: it holds the client address and the query string, and
            # cairn.requests logs every request with its id instead.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }
