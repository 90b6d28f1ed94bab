"""A search during re-ingestion sees the old version or the new one, never a mix."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from ingest.services import pipeline
from ingest.services.pipeline import IngestOutcome, document_ingest
from kb.models import Chunk
from tests.factories import upload

pytestmark = pytest.mark.django_db(transaction=True)

OLD = b"# Pricing\n\n" + b"\n\n".join(
    f"## Plan {i}\n\nPlan {i} costs {i * 10} dollars a month.".encode() for i in range(4)
)
NEW = b"# Pricing\n\n" + b"\n\n".join(
    f"## Tier {i}\n\nTier {i} costs {i * 12} euros a month, billed yearly.".encode()
    for i in range(7)
)


def test_readers_never_see_a_half_swapped_document(kb, monkeypatch) -> None:
    document = upload(kb, "pricing.md", OLD).document
    document_ingest(document_id=document.pk)
    old_ids = frozenset(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    upload(kb, "pricing.md", NEW)  # version 2, pending

    # Hold the swap transaction open for a while after it has written everything,
    # so readers run while new rows exist but are not committed.
    real_write = pipeline._write_chunks

    def slow_write(*args, **kwargs):
        real_write(*args, **kwargs)
        time.sleep(1.0)

    monkeypatch.setattr(pipeline, "_write_chunks", slow_write)
    seen: list[tuple[frozenset[int], frozenset[int]]] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                rows = list(
                    Chunk.objects.filter(document_id=document.pk).values_list(
                        "pk", "document_version"
                    )
                )
                seen.append((frozenset(pk for pk, _ in rows), frozenset(v for _, v in rows)))
                time.sleep(0.01)
        finally:
            connection.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        outcome = document_ingest(document_id=document.pk)
        time.sleep(0.2)
    finally:
        done.set()
        thread.join()

    new_ids = frozenset(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    assert outcome is IngestOutcome.READY
    assert new_ids and new_ids.isdisjoint(old_ids)
    snapshots = {ids for ids, _ in seen}
    assert snapshots <= {old_ids, new_ids}, "a reader saw a mix or an empty document"
    assert old_ids in snapshots and new_ids in snapshots
    assert all(len(versions) == 1 for _, versions in seen)
    # The reader really ran while the swap transaction was open (~1 s of it).
    assert sum(ids == old_ids for ids, _ in seen) > 20
