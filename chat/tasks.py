"""Celery tasks of the chat app: thin wrappers around services."""

from __future__ import annotations

import logging
from dataclasses import asdict

from chat.models import BudgetWindow, GoldenCase
from chat.services.budget_alerts import budget_alerts_send
from chat.services.cost_alerts import cost_alert_check
from chat.services.golden_cases import golden_cases_run
from chat.services.recovery import answers_reap
from chat.services.retention import conversations_purge, retention_cutoff
from config.celery_app import app
from kb.models import Account

logger = logging.getLogger(__name__)


@app.task(name="chat.tasks.retention_purge_task", ignore_result=True)
def retention_purge_task() -> dict[str, int]:
    """Run by beat every CAIRN_RETENTION_INTERVAL_SECONDS; the purge is batched and
    idempotent, so a run cut short by the time limit is finished by the next one."""
    cutoff = retention_cutoff()
    if cutoff is None:  # CAIRN_RETENTION_DAYS=0: keep everything
        return {}
    return asdict(conversations_purge(older_than=cutoff))


@app.task(name="chat.tasks.answers_reap_task", ignore_result=True)
def answers_reap_task() -> dict[str, int]:
    """Run by beat every CAIRN_ANSWER_REAPER_INTERVAL_SECONDS: fail the answers whose web
    process died mid-stream and settle their budget holds."""
    result = answers_reap()
    return {"failed": len(result.failed), "settled": len(result.settled)}


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


@app.task(name="chat.tasks.budget_alerts_send_task", ignore_result=True)
def budget_alerts_send_task(window_ids: list[int], refused: bool = False) -> None:
    """Mail and log the budget alerts these windows have newly earned (queued after a
    settle or a refusal); each alert is claimed in the database, so a repeat sends none."""
    for window_id in window_ids:
        try:
            budget_alerts_send(window_id=window_id, refused=refused)
        except BudgetWindow.DoesNotExist:
            logger.info("budget window %s is gone (budget deleted): no alert", window_id)


@app.task(name="chat.tasks.cost_alert_check_task", ignore_result=True)
def cost_alert_check_task(account_id: int) -> None:
    """Queued after an answer that cost something: alert once a day past the amount."""
    try:
        account = Account.objects.get(pk=account_id)
    except Account.DoesNotExist:
        logger.info("account %s is gone: no cost alert check", account_id)
        return
    cost_alert_check(account=account)
