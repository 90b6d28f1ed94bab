"""Deleting documents, knowledge bases and accounts together with their stored files."""

from __future__ import annotations

import logging

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, QuerySet

from kb.models import Account, Document, KnowledgeBase

logger = logging.getLogger(__name__)


def _delete_files_after_commit(names: list[str]) -> None:
    def delete() -> None:
        for name in names:
            try:
                default_storage.delete(name)
            except OSError:
                logger.warning("could not delete stored file %s", name, exc_info=True)

    transaction.on_commit(delete)


def _stored_files(documents: QuerySet[Document]) -> list[str]:
    """Every file the documents keep: the latest upload's and the live version's."""
    rows = documents.values_list("file", "previous_file")
    return [name for pair in rows for name in pair if name]


@transaction.atomic
def documents_delete(*, documents: QuerySet[Document]) -> int:
    """Delete documents, their chunks (cascade) and, after commit, their files."""
    rows = list(documents.values_list("pk", "knowledge_base_id", "file", "previous_file"))
    Document.objects.filter(pk__in=[row[0] for row in rows]).delete()
    # Searchable content changed: answer caches keyed on the version go stale.
    KnowledgeBase.objects.filter(pk__in={row[1] for row in rows}).update(
        content_version=F("content_version") + 1
    )
    _delete_files_after_commit([name for row in rows for name in row[2:] if name])
    return len(rows)


@transaction.atomic
def knowledge_bases_delete(*, knowledge_bases: QuerySet[KnowledgeBase]) -> int:
    """Delete knowledge bases with everything in them, files included."""
    ids = list(knowledge_bases.values_list("pk", flat=True))
    names = _stored_files(Document.objects.filter(knowledge_base_id__in=ids))
    KnowledgeBase.objects.filter(pk__in=ids).delete()
    _delete_files_after_commit(names)
    return len(ids)


@transaction.atomic
def accounts_delete(*, accounts: QuerySet[Account]) -> int:
    """Delete accounts with all their knowledge bases, documents and files."""
    ids = list(accounts.values_list("pk", flat=True))
    names = _stored_files(Document.objects.filter(account_id__in=ids))
    Account.objects.filter(pk__in=ids).delete()
    _delete_files_after_commit(names)
    return len(ids)
