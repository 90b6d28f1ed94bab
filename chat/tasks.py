"""Celery tasks of the chat app: thin wrappers around services."""

from __future__ import annotations

import logging
from dataclasses import asdict

from chat.models import GoldenCase
from chat.services.golden_cases import golden_cases_run
from chat.services.retention import conversations_purge, retention_cutoff
from config.celery_app import app

logger = logging.getLogger(__name__)


@app.task(name="chat.tasks.retention_purge_task", ignore_result=True)
def retention_purge_task() -> dict[str, int]:
    """Run by beat every CAIRN_RETENTION_INTERVAL_SECONDS; the purge is batched and
    idempotent, so a run cut short by the time limit is finished by the next one."""
    cutoff = retention_cutoff()
    if cutoff is None:  # CAIRN_RETENTION_DAYS=0: keep everything
        return {}
    return asdict(conversations_purge(older_than=cutoff))


@app.task(name="chat.tasks.golden_cases_run_task", ignore_result=True)
def golden_cases_run_task(account_id: int) -> dict[str, int]:
    """Run every golden case of an account again and record each verdict. Safe to repeat:
    a run only overwrites the cases' last verdicts."""
    cases = GoldenCase.objects.filter(account_id=account_id).order_by("pk")
    if not cases.exists():
        logger.info("golden cases of account %s: none to run", account_id)
        return {"cases": 0, "passed": 0}
    run = golden_cases_run(cases=cases)
    return {"cases": len(run.results), "passed": run.passed}
