"""Migration kb 0009 on a database filled before it: which version each document serves."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("kb", "0008_daily_cost_alert")]


@pytest.mark.django_db(transaction=True)
def test_existing_documents_learn_which_version_search_serves() -> None:
    # Given documents written before the migration: one ready at version 3, one whose
    # version 2 failed over chunks of version 1, one never processed
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    account = apps.get_model("kb", "Account").objects.create(name="Acme", slug="acme")
    kb = apps.get_model("kb", "KnowledgeBase").objects.create(
        account=account, name="Help", slug="help"
    )
    Document = apps.get_model("kb", "Document")

    def document(title: str, status: str, version: int):
        return Document.objects.create(
            account=account, knowledge_base=kb, title=title, source=title,
            original_filename=title, file=f"documents/{title}", content_hash=title,
            mime_type="text/plain", status=status, version=version,
        )  # fmt: skip

    document("ready", "ready", 3)
    failed = document("failed", "failed", 2)
    document("pending", "pending", 1)
    apps.get_model("kb", "Chunk").objects.create(
        document=failed, account=account, knowledge_base=kb, document_version=1, ordinal=0,
        text="t", char_start=0, char_end=1, token_count=1, embedding=[0.0] * 383 + [1.0],
    )  # fmt: skip

    # When the migrations run
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    # Then each document serves what its chunks are of
    from kb.models import Document as Current

    served = dict(Current.objects.values_list("title", "live_version"))
    assert served == {"ready": 3, "failed": 1, "pending": None}
