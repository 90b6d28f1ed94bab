"""Celery tasks of the chat app: thin wrappers around services."""

from __future__ import annotations

from dataclasses import asdict

from chat.services.retention import conversations_purge, retention_cutoff
from config.celery_app import app


@app.task(name="chat.tasks.retention_purge_task", ignore_result=True)
def retention_purge_task() -> dict[str, int]:
    """Run by beat every CAIRN_RETENTION_INTERVAL_SECONDS; the purge is batched and
    idempotent, so a run cut short by the time limit is finished by the next one."""
    cutoff = retention_cutoff()
    if cutoff is None:  # CAIRN_RETENTION_DAYS=0: keep everything
        return {}
    return asdict(conversations_purge(older_than=cutoff))
