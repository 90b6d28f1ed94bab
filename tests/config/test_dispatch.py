"""Services queue tasks by name on commit; no service imports a tasks module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from celery.signals import task_prerun
from django.db import transaction
from kombu.exceptions import OperationalError

from config.dispatch import UnknownTaskError, enqueue_on_commit, task_by_name
from tests.factories import make_account
from tests.support.tasks import tasks_run_inline

REPO = Path(__file__).resolve().parents[2]
APPS = ("chat", "kb", "ingest")


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_no_service_or_selector_imports_a_tasks_module() -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for app in APPS
        for layer in ("services", "selectors")
        for path in sorted((REPO / app / layer).glob("**/*.py"))
        for module in _imported_modules(path)
        if module.endswith(".tasks") or ".tasks." in module
    ]
    assert not offenders, offenders


def test_a_task_name_that_does_not_exist_fails_where_it_is_written() -> None:
    with pytest.raises(UnknownTaskError, match="chat.tasks.no_such_task"):
        enqueue_on_commit("chat.tasks.no_such_task", account_id=1)


@pytest.mark.django_db(transaction=True)
def test_the_task_runs_after_commit_and_never_after_a_rollback() -> None:
    account = make_account()
    ran: list[dict] = []

    def record(sender=None, kwargs=None, **_: object) -> None:
        ran.append(dict(kwargs or {}))

    task_prerun.connect(record, weak=False)
    try:
        with tasks_run_inline():
            with pytest.raises(RuntimeError), transaction.atomic():
                enqueue_on_commit("chat.tasks.cost_alert_check_task", account_id=account.pk)
                raise RuntimeError("rolled back")
            assert ran == []

            with transaction.atomic():
                enqueue_on_commit("chat.tasks.cost_alert_check_task", account_id=account.pk)
                assert ran == []  # not before the commit
            assert ran == [{"account_id": account.pk}]
    finally:
        task_prerun.disconnect(record)


def _unreachable_broker(*args: object, **kwargs: object) -> None:
    raise OperationalError("[Errno 111] Connection refused")


@pytest.mark.django_db(transaction=True)
def test_quiet_logs_a_broker_that_cannot_be_reached_instead_of_raising(caplog, monkeypatch) -> None:
    task = task_by_name("chat.tasks.cost_alert_check_task")
    monkeypatch.setattr(task, "apply_async", _unreachable_broker)

    enqueue_on_commit("chat.tasks.cost_alert_check_task", account_id=1, quiet=True)
    assert "could not queue chat.tasks.cost_alert_check_task" in caplog.text

    with pytest.raises(OperationalError):
        enqueue_on_commit("chat.tasks.cost_alert_check_task", account_id=1)
