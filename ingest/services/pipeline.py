"""Ingesting one document: claim → parse → chunk → embed → swap in → ready.

Guarantees, whatever happens to the worker:

* Claiming is a conditional update under a row lock, so two workers never
  process the same document at once; a document left ``processing`` by a dead
  worker becomes claimable again once it has shown no progress for
  CAIRN_INGEST_STALE_SECONDS (the reaper requeues it).
* All chunks of a version are written in one transaction that also deletes the
  previous version's, so a search sees the old chunks or the new ones, never a
  mix, and a crash before that commit leaves no partial chunks behind.
* A new version that fails leaves the live one as it was: its chunks, its text
  and its file (kept by the upload as ``previous_file``, deleted by the swap-in
  of a newer version), so the document reads "version 2 failed: …; serving
  version 1".
* Every failure ends in a state a person can act on: ``failed`` with a plain
  reason, or ``pending`` for a retry when the cause is transient (an embeddings
  API timeout), until the attempt cap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import BinaryIO, cast

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.dispatch import enqueue_on_commit
from ingest.chunking import ChunkDraft, ChunkingOptions, chunk_document, embedding_input
from ingest.filetypes import FileTypeError, file_type_for_mime
from ingest.parsing.base import ParsedDocument, ParseError, ParseLimits
from ingest.parsing.registry import parse_document
from kb.embeddings.base import EmbeddingError, Vectors
from kb.embeddings.registry import get_embedder
from kb.embeddings.usage import embedding_context
from kb.guard.passages import PassageVerdict, passage_scan
from kb.models import Chunk, Document, KnowledgeBase
from kb.search.keyword import chunk_keywords
from observability.tracing import span, traced

logger = logging.getLogger(__name__)


class TransientIngestError(Exception):
    """Worth another try later (the document is back to pending)."""


class IngestOutcome(StrEnum):
    READY = "ready"
    FAILED = "failed"
    SKIPPED = "skipped"  # not claimable: done, failed, or being processed elsewhere
    SUPERSEDED = "superseded"  # a newer version or a deletion arrived meanwhile


@dataclass(frozen=True)
class _Claim:
    document: Document
    version: int
    content_hash: str
    started_at: object  # processing_started_at: identifies this claim among retries


@traced("ingest", "document_id")  # the ingest.* spans below are its children
def document_ingest(*, document_id: int) -> IngestOutcome:
    """Process one document end to end (see the module docstring for guarantees).

    Raises TransientIngestError when a later retry may succeed.
    """
    claim = _claim(document_id)
    if claim is None:
        return IngestOutcome.SKIPPED
    document = claim.document
    try:
        with span("ingest.parse", mime_type=document.mime_type) as parse_span:
            parsed = _parse(document)
            parse_span.set(blocks=len(parsed.blocks), pages=parsed.page_count)
        with span("ingest.chunk") as chunk_span:
            drafts = chunk_document(
                parsed,
                options=ChunkingOptions(
                    max_tokens=settings.CAIRN_CHUNK_MAX_TOKENS,
                    overlap_tokens=settings.CAIRN_CHUNK_OVERLAP_TOKENS,
                ),
            )
            chunk_span.set(chunks=len(drafts))
        if not drafts:
            raise ParseError("no text found in the document")
        _progress(document, total=len(drafts), done=0)
        knowledge_base = KnowledgeBase.objects.get(pk=document.knowledge_base_id)
        inputs = [embedding_input(draft) for draft in drafts]
        with (
            span("ingest.embed", model=knowledge_base.embedding_model, texts=len(inputs)),
            embedding_context(account_id=document.account_id, feature="ingestion"),
        ):
            vectors = _embed(document, inputs, knowledge_base.embedding_model, report=True)
            next_vectors = None
            next_model = knowledge_base.reembedding_model
            if next_model:
                next_vectors = _embed(document, inputs, next_model, report=False)
        with span("ingest.scan") as scan_span:
            verdicts = _scan(document, drafts)
            scan_span.set(flagged=sum(v.flagged for v in verdicts))
        with span("ingest.store", chunks=len(drafts)) as store_span:
            outcome = _swap_in(
                claim, parsed, drafts, vectors, next_vectors, verdicts,
                knowledge_base.embedding_model, next_model,
            )  # fmt: skip
            store_span.set(outcome=str(outcome))
        return outcome
    except ParseError as exc:
        return _fail(document, str(exc))
    except EmbeddingError as exc:
        if exc.transient:
            _release_for_retry(document, f"temporary problem while embedding: {exc}")
            raise TransientIngestError(str(exc)) from exc
        return _fail(document, f"embedding failed: {exc}")
    except SoftTimeLimitExceeded:
        return _fail(
            document,
            f"processing took longer than the time limit "
            f"({settings.CELERY_TASK_SOFT_TIME_LIMIT} s); "
            "split the document or raise CAIRN_TASK_TIME_LIMIT",
        )
    except TransientIngestError:
        raise
    except Exception as exc:  # a bug, or an input no check foresaw: fail loudly but cleanly
        logger.exception("document %s: unexpected error while ingesting", document.pk)
        return _fail(
            document,
            f"Cairn could not process this document because of an internal error "
            f"({exc.__class__.__name__}); the details are in the worker log",
        )


def _claim(document_id: int) -> _Claim | None:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CAIRN_INGEST_STALE_SECONDS)
    claimable = Q(status=Document.Status.PENDING) | Q(
        status=Document.Status.PROCESSING, updated_at__lt=stale
    )
    with transaction.atomic():
        document = (
            Document.objects.select_for_update(skip_locked=True)
            .filter(claimable, pk=document_id)
            .first()
        )
        if document is None:
            return None
        if document.attempts >= settings.CAIRN_INGEST_MAX_ATTEMPTS:
            reason = document.error or "the worker stopped while processing it"
            _mark_failed(
                document, f"gave up after {document.attempts} attempts; last problem: {reason}"
            )
            return None
        document.status = Document.Status.PROCESSING
        document.attempts += 1
        document.processing_started_at = now
        document.chunks_total = 0
        document.chunks_embedded = 0
        document.save(
            update_fields=[
                "status",
                "attempts",
                "processing_started_at",
                "chunks_total",
                "chunks_embedded",
                "updated_at",
            ]
        )
    logger.info("document %s: claimed (attempt %s)", document.pk, document.attempts)
    return _Claim(document, document.version, document.content_hash, now)


def _parse(document: Document) -> ParsedDocument:
    try:
        file_type = file_type_for_mime(document.mime_type)
    except FileTypeError as exc:
        raise ParseError(str(exc)) from exc
    limits = ParseLimits(
        max_chars=settings.CAIRN_MAX_DOCUMENT_CHARS, max_pdf_pages=settings.CAIRN_MAX_PDF_PAGES
    )
    try:
        with document.file.open("rb") as stream:
            return parse_document(cast(BinaryIO, stream), file_type=file_type.key, limits=limits)
    except FileNotFoundError as exc:
        raise ParseError("the stored file is missing; upload the document again") from exc


def _embed(document: Document, inputs: list[str], model_id: str, *, report: bool) -> Vectors:
    """Embed in batches, shortest texts together (less padding), reporting progress."""
    embedder = get_embedder(model_id)
    batch_size = settings.CAIRN_EMBEDDING_BATCH_SIZE
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    vectors = np.empty((len(inputs), embedder.dimension), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        vectors[indices] = embedder.embed([inputs[i] for i in indices])
        if report:
            _progress(document, done=min(start + batch_size, len(order)))
    return vectors


def _progress(document: Document, *, done: int, total: int | None = None) -> None:
    # Outside any transaction: the admin's progress bar sees it at once, and the
    # fresh updated_at tells the reaper this worker is alive.
    fields: dict[str, object] = {"chunks_embedded": done, "updated_at": timezone.now()}
    if total is not None:
        fields["chunks_total"] = total
    Document.objects.filter(pk=document.pk).update(**fields)


def _scan(document: Document, drafts: list[ChunkDraft]) -> list[PassageVerdict]:
    """Indirect prompt injection: what each passage aims at an assistant (kb.guard.passages)."""
    with embedding_context(account_id=None, feature="guard"):
        verdicts = [passage_scan(draft.text) for draft in drafts]
    flagged = sum(v.flagged for v in verdicts)
    if flagged:
        logger.warning(
            "document %s: %s of %s passages flagged for prompt injection",
            document.pk, flagged, len(drafts),
        )  # fmt: skip
    return verdicts


def _swap_in(
    claim: _Claim,
    parsed: ParsedDocument,
    drafts: list[ChunkDraft],
    vectors: Vectors,
    next_vectors: Vectors | None,
    verdicts: list[PassageVerdict],
    model_id: str,
    next_model: str,
) -> IngestOutcome:
    with transaction.atomic():
        current = Document.objects.select_for_update().filter(pk=claim.document.pk).first()
        if (
            current is None
            or current.version != claim.version
            or current.content_hash != claim.content_hash
            or current.status != Document.Status.PROCESSING
            or current.processing_started_at != claim.started_at  # reclaimed by another worker
        ):
            logger.info("document %s: superseded while processing", claim.document.pk)
            return IngestOutcome.SUPERSEDED
        # The rows this version replaces, before the knowledge base: a re-embedding's swap
        # locks chunks, then the knowledge base (kb.services.reembedding); same order here.
        list(Chunk.objects.select_for_update().filter(document=current).values_list("pk"))
        knowledge_base = KnowledgeBase.objects.select_for_update().get(pk=current.knowledge_base_id)
        live, pending = knowledge_base.embedding_model, knowledge_base.reembedding_model
        model_switched = False
        if live == model_id and pending == next_model:
            _write_chunks(current, parsed, drafts, vectors, next_vectors, verdicts)
        elif live == model_id and not pending:  # the re-embedding was cancelled meanwhile
            _write_chunks(current, parsed, drafts, vectors, None, verdicts)
        elif live == next_model and not pending and next_vectors is not None:  # it finished
            _write_chunks(current, parsed, drafts, next_vectors, None, verdicts)
        else:  # a re-embedding started or changed model meanwhile: some vectors are missing
            model_switched = True
    if model_switched:
        _release_for_retry(current, "the knowledge base changed its embedding model")
        raise TransientIngestError("embedding model switched during ingestion")
    logger.info("document %s: ready, %s chunks", current.pk, len(drafts))
    _units_embed_later(current)
    return IngestOutcome.READY


def _units_embed_later(document: Document) -> None:
    """Queue the embedding of the new chunks' quotable units, which searches and answers
    would otherwise compute (kb.services.units); the document does not wait for it, and a
    broker that cannot be reached is logged, never raised (searches embed them lazily)."""
    enqueue_on_commit(
        "kb.tasks.units_embed_task", document.knowledge_base_id, document.pk, quiet=True
    )


def _write_chunks(
    document: Document,
    parsed: ParsedDocument,
    drafts: list[ChunkDraft],
    vectors: Vectors,
    next_vectors: Vectors | None,
    verdicts: list[PassageVerdict],
) -> None:
    """Replace the document's chunks and mark it ready, inside the caller's transaction.

    This version becomes the live one; the previous live version's file, kept while
    this one was not ready, is deleted once the transaction commits.
    """
    Chunk.objects.filter(document=document).delete()
    Chunk.objects.bulk_create(
        [
            Chunk(
                document=document,
                account_id=document.account_id,
                knowledge_base_id=document.knowledge_base_id,
                document_version=document.version,
                ordinal=draft.ordinal,
                text=draft.text,
                heading_path=draft.heading_path[:1000],
                char_start=draft.char_start,
                char_end=draft.char_end,
                page=draft.page,
                token_count=draft.token_count,
                embedding=vectors[i],
                embedding_next=None if next_vectors is None else next_vectors[i],
                safety_flags=list(verdicts[i].flags),
                injection_score=verdicts[i].injection_score,
                # Indexed for keyword search by the database, in this transaction.
                **chunk_keywords(heading_path=draft.heading_path[:1000], text=draft.text),
            )
            for i, draft in enumerate(drafts)
        ],
        batch_size=500,
    )
    document.status = Document.Status.READY
    document.error = ""
    document.parsed_text = parsed.text
    document.page_count = parsed.page_count
    document.chunks_total = document.chunks_embedded = len(drafts)
    document.ingested_at = timezone.now()
    document.live_version = document.version
    superseded_file = document.previous_file.name
    document.previous_file.name = ""
    document.previous_filename = document.previous_mime_type = ""
    document.save(
        update_fields=[
            "status",
            "error",
            "parsed_text",
            "page_count",
            "chunks_total",
            "chunks_embedded",
            "ingested_at",
            "live_version",
            "previous_file",
            "previous_filename",
            "previous_mime_type",
            "updated_at",
        ]
    )
    if superseded_file:
        storage = document.previous_file.storage
        transaction.on_commit(lambda: _file_delete(storage, superseded_file))
    KnowledgeBase.objects.filter(pk=document.knowledge_base_id).update(
        content_version=F("content_version") + 1
    )


def _file_delete(storage: Storage, name: str) -> None:
    try:
        storage.delete(name)
    except OSError:
        logger.warning("could not delete stored file %s", name, exc_info=True)


def _fail(document: Document, reason: str) -> IngestOutcome:
    with transaction.atomic():
        current = Document.objects.select_for_update().filter(pk=document.pk).first()
        if current is None or current.status != Document.Status.PROCESSING:
            return IngestOutcome.SUPERSEDED
        _mark_failed(current, reason)
    return IngestOutcome.FAILED


def _mark_failed(document: Document, reason: str) -> None:
    logger.warning("document %s failed: %s", document.pk, reason)
    document.status = Document.Status.FAILED
    document.error = reason[:2000]
    document.save(update_fields=["status", "error", "updated_at"])


def _release_for_retry(document: Document, reason: str) -> None:
    """Back to pending for the next attempt, or failed if the attempts are used up."""
    limit = settings.CAIRN_INGEST_MAX_ATTEMPTS
    with transaction.atomic():
        current = Document.objects.select_for_update().filter(pk=document.pk).first()
        if current is None or current.status != Document.Status.PROCESSING:
            return
        if current.attempts >= limit:
            _mark_failed(
                current, f"gave up after {current.attempts} attempts; last problem: {reason}"
            )
            return
        current.status = Document.Status.PENDING
        current.error = f"{reason} (attempt {current.attempts} of {limit})"
        current.save(update_fields=["status", "error", "updated_at"])
