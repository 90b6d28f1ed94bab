"""Ingestion through a real Celery worker process, including one killed mid-document."""

from __future__ import annotations

import pytest

from kb.models import Chunk, Document
from tests.factories import upload
from tests.support.documents import encrypted_pdf_bytes, zip_bomb_docx_bytes
from tests.support.worker import Worker, redis_queue, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = b"# Shipping\n\nParcels leave our warehouse within 2 business days.\n"


def _long_markdown(sections: int) -> bytes:
    parts = []
    for i in range(sections):
        parts.append(
            f"## Section {i}\n\n"
            + " ".join(
                f"Clause {i}.{j} explains how invoices number {j} are reconciled against payouts."
                for j in range(12)
            )
        )
    return ("# Operations manual\n\n" + "\n\n".join(parts)).encode()


@pytest.fixture
def queue():
    with redis_queue() as name:
        yield name


@pytest.fixture
def workers(queue, tmp_path):
    started: list[Worker] = []

    def start(*, beat: bool = False, **env: str) -> Worker:
        worker = Worker(queue, tmp_path / "worker.log", **env).start(beat=beat)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def _status(document: Document) -> str:
    document.refresh_from_db()
    return document.status


def test_uploads_are_ingested_by_a_worker_that_survives_bad_files(kb, workers, tmp_path) -> None:
    worker = workers()
    bad_pdf = upload(kb, "locked.pdf", encrypted_pdf_bytes()).document
    bomb = upload(kb, "bomb.docx", zip_bomb_docx_bytes()).document
    good = upload(kb, "shipping.md", GOOD).document

    for document in (bad_pdf, bomb, good):
        wait_for(
            lambda d=document: _status(d) in {"ready", "failed"},
            timeout=120,
            what=f"{document.original_filename} to settle",
            log=tmp_path / "worker.log",
        )

    assert (bad_pdf.status, bomb.status, good.status) == ("failed", "failed", "ready")
    assert "encrypted" in bad_pdf.error and "zip bomb" in bomb.error
    assert Chunk.objects.filter(document=good).count() >= 1
    assert worker.alive, "a bad file must never take the worker down"


def test_a_worker_killed_mid_document_leaves_it_ready_exactly_once(kb, workers, tmp_path) -> None:
    log = tmp_path / "worker.log"
    recovery = {"CAIRN_INGEST_STALE_SECONDS": "3", "CAIRN_REAPER_INTERVAL_SECONDS": "1"}
    first = workers(**recovery)
    document = upload(kb, "manual.md", _long_markdown(sections=120)).document

    # Given a worker half-way through embedding the document
    wait_for(
        lambda: Document.objects.filter(pk=document.pk, chunks_embedded__gt=0).exists(),
        timeout=120,
        what="embedding to start",
        log=log,
    )
    # When it is killed without warning
    first.kill()
    document.refresh_from_db()
    assert document.status == "processing" and document.chunks_embedded < document.chunks_total
    assert not Chunk.objects.filter(document=document).exists(), "no partial chunks"

    # Then a new worker (whose beat runs the reaper) finishes it
    workers(beat=True, **recovery)
    wait_for(lambda: _status(document) == "ready", timeout=180, what="recovery", log=log)

    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert [chunk.ordinal for chunk in chunks] == list(range(document.chunks_total))
    assert {chunk.document_version for chunk in chunks} == {document.version}
    assert document.attempts == 2
    assert "reaper: requeued" in log.read_text()
