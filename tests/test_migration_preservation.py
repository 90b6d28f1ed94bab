"""Moving models between apps moves no data: a database filled at the schema before the
move (a row in every table) migrates to today's with every row still there.

The gateway's models (LlmCall, LlmRoute, SemanticCacheEntry) moved from chat to llm with
state-only migrations (chat 0015, llm 0001) keeping their tables. This test unapplies
those, fills every table through the historical models of that state, migrates forward
and compares the row counts of every table, then reads the moved rows through the new
models.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from django.apps.registry import Apps
from django.db import IntegrityError, connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
from pgvector.django import HalfVectorField, VectorField

from llm.models import LlmCall, LlmRoute, SemanticCacheEntry

BEFORE_THE_MOVE = [("chat", "0014_escalation_and_flags"), ("llm", None)]


def _latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return list(executor.loader.graph.leaf_nodes())


def _migrate(targets: Sequence[tuple[str, str | None]]) -> Apps:
    """Migrate to ``targets``; the models as they are then (the historical ones)."""
    MigrationExecutor(connection).migrate(targets)
    applied = MigrationExecutor(connection).loader.applied_migrations
    return MigrationExecutor(connection).loader.project_state(list(applied)).apps


def _value(field: Any, n: int) -> Any:
    """A value of the field's type that passes its validators and constraints."""
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, VectorField | HalfVectorField):
        return [0.1] * int(field.dimensions or 0)
    if isinstance(field, models.JSONField):
        return field.get_default() if field.has_default() else {}
    if isinstance(field, models.DateTimeField):
        return dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    if isinstance(field, models.DateField):
        return dt.date(2026, 12, 1)
    if isinstance(field, models.DecimalField):
        return Decimal(1)
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.FloatField):
        return 0.5
    if isinstance(field, models.IntegerField):
        return 1
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.FileField):
        return f"tests/preserved-{n}.txt"
    if isinstance(field, models.BinaryField):
        return n.to_bytes(32, "big")
    if isinstance(field, models.GenericIPAddressField):
        return "192.0.2.1"
    if isinstance(field, models.EmailField):
        return f"row{n}@example.com"
    if hasattr(field, "base_field"):  # ArrayField
        return []
    if isinstance(field, models.CharField | models.TextField):
        return f"row-{n}"[: field.max_length or 100]
    raise NotImplementedError(f"{field.model.__name__}.{field.name}: {type(field).__name__}")


def _fill(apps: Apps) -> None:
    """One row in every concrete model's table (and in every many-to-many table)."""
    # Historical models are built at run time: Any, for the type checker.
    made: dict[str, Any] = {}
    pending: list[Any] = [m for m in apps.get_models() if not m._meta.proxy and m._meta.managed]
    while pending:
        progressed = False
        for model in list(pending):
            label = model._meta.label_lower
            fks: list[Any] = [f for f in model._meta.concrete_fields if f.is_relation]
            if any(f.related_model._meta.label_lower not in made and not f.null for f in fks):
                continue
            values: dict[str, Any] = {}
            field: Any
            for field in model._meta.concrete_fields:
                if isinstance(field, models.AutoField) or field.primary_key and field.has_default():
                    continue
                if field.is_relation:
                    target = made.get(field.related_model._meta.label_lower)
                    values[field.name] = target
                    continue
                values[field.attname] = _value(field, len(made))
            try:
                with transaction.atomic():
                    made[label] = model.objects.create(**values)
            except IntegrityError:
                # A trigger wrote this table's row already (the keyword index's statistics
                # for a new chunk's knowledge base): that row will do.
                made[label] = model.objects.get()
            pending.remove(model)
            progressed = True
        assert progressed, f"cannot fill {[m._meta.label for m in pending]}"
    for row in made.values():
        m2m: Any
        for m2m in row._meta.many_to_many:
            target = made.get(m2m.related_model._meta.label_lower)
            if target is not None and m2m.remote_field.through._meta.auto_created:
                getattr(row, m2m.name).add(target)


def _row_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'django_migrations'"
        )
        tables = sorted(row[0] for row in cursor.fetchall())
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - catalogue names
            counts[table] = cursor.fetchone()[0]
    return counts


@pytest.mark.django_db(transaction=True)
def test_a_database_filled_before_the_move_keeps_every_row_after_it() -> None:
    latest = _latest()
    try:
        # Given a database at the schema before the gateway's models moved, a row in
        # every table
        old_apps = _migrate(BEFORE_THE_MOVE)
        _fill(old_apps)
        before = _row_counts()
        assert before["chat_llmcall"] == before["chat_llmroute"] == 1
        assert all(before[table] >= 1 for table in before if not table.startswith("django_"))

        # When it migrates to today's schema
        _migrate(latest)

        # Then every table still holds every row, and the moved rows read as llm's
        after = _row_counts()
        assert {t: after.get(t) for t in before} == before
        assert LlmCall.objects.count() == LlmRoute.objects.count() == 1
        assert SemanticCacheEntry.objects.count() == 1
    finally:
        _migrate(latest)
