"""Accepting uploaded files as documents of a knowledge base."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath, PureWindowsPath

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ingest.filetypes import FileTypeError, detect_file_type
from kb.models import Document, KnowledgeBase

logger = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UploadRejected(Exception):
    """An upload that cannot become a document; the message is for the uploader."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason


class UploadResult(StrEnum):
    CREATED = "created"  # a new document
    UPDATED = "updated"  # new content from a known source: a new version
    DUPLICATE = "duplicate"  # these bytes are already in the knowledge base


@dataclass(frozen=True)
class UploadOutcome:
    document: Document
    result: UploadResult

    @property
    def created(self) -> bool:
        return self.result is not UploadResult.DUPLICATE


def clean_filename(raw: str) -> str:
    """A display name safe to store and show: no directories, control characters or NULs.

    It is only ever displayed; files are stored under generated names.
    """
    name = PureWindowsPath(PurePosixPath(raw.replace("\x00", "")).name).name
    name = _CONTROL.sub("", unicodedata.normalize("NFC", name)).strip().lstrip(".")
    return name[:255] or "unnamed"


def title_from_filename(filename: str) -> str:
    stem = PurePosixPath(filename).stem
    words = re.sub(r"[-_]+", " ", stem).strip()
    return (words[:1].upper() + words[1:])[:300] or "Untitled document"


def _sha256(upload: File) -> str:
    digest = hashlib.sha256()
    upload.seek(0)
    for block in upload.chunks():
        digest.update(block)
    upload.seek(0)
    return digest.hexdigest()


def document_create(
    *,
    knowledge_base: KnowledgeBase,
    upload: File,
    title: str | None = None,
    source: str | None = None,
) -> UploadOutcome:
    """Store ``upload`` in ``knowledge_base`` and queue its ingestion after commit.

    Idempotent by content: bytes already present in this knowledge base return
    the existing document (DUPLICATE). New bytes from a ``source`` (default: the
    file name) that already has a document become that document's next version
    (UPDATED); its old chunks stay searchable until the new ones replace them in
    one transaction. Raises UploadRejected for files that are too large or of a
    type Cairn cannot read.
    """
    filename = clean_filename(upload.name or "")
    source = (source or filename)[:500]
    limit = settings.CAIRN_MAX_UPLOAD_MB * 1024 * 1024
    if upload.size is not None and upload.size > limit:
        raise UploadRejected(
            filename,
            f"the file is {upload.size / 1024 / 1024:.1f} MB; the limit is "
            f"{settings.CAIRN_MAX_UPLOAD_MB} MB",
        )
    if not upload.size:
        raise UploadRejected(filename, "the file is empty")
    try:
        file_type = detect_file_type(upload, filename)  # type: ignore[arg-type]
    except FileTypeError as exc:
        raise UploadRejected(filename, str(exc)) from exc
    content_hash = _sha256(upload)

    existing = Document.objects.filter(
        knowledge_base=knowledge_base, content_hash=content_hash
    ).first()
    if existing is not None:
        return UploadOutcome(existing, UploadResult.DUPLICATE)

    previous = Document.objects.filter(knowledge_base=knowledge_base, source=source).first()
    if previous is not None:
        return _new_version(previous, upload, filename, content_hash, file_type.mime_type)

    document = Document(
        account_id=knowledge_base.account_id,
        knowledge_base=knowledge_base,
        title=title or title_from_filename(filename),
        source=source,
        original_filename=filename,
        content_hash=content_hash,
        mime_type=file_type.mime_type,
        size_bytes=upload.size,
    )
    # The file is written first so a row never points at a missing file; if the
    # row then loses a race on a unique constraint, the file goes.
    document.file.save(filename, upload, save=False)
    try:
        with transaction.atomic():
            document.save()
            _enqueue_after_commit(document.pk)
    except IntegrityError:
        document.file.delete(save=False)
        winner = Document.objects.filter(
            knowledge_base=knowledge_base, content_hash=content_hash
        ).first() or Document.objects.get(knowledge_base=knowledge_base, source=source)
        return UploadOutcome(winner, UploadResult.DUPLICATE)
    logger.info("document %s stored for knowledge base %s", document.pk, knowledge_base.pk)
    return UploadOutcome(document, UploadResult.CREATED)


def _new_version(
    document: Document, upload: File, filename: str, content_hash: str, mime_type: str
) -> UploadOutcome:
    old_file = document.file.name
    document.file.save(filename, upload, save=False)
    with transaction.atomic():
        updated = Document.objects.filter(pk=document.pk).update(
            file=document.file.name,
            original_filename=filename,
            content_hash=content_hash,
            mime_type=mime_type,
            size_bytes=upload.size,
            version=F("version") + 1,
            status=Document.Status.PENDING,
            error="",
            attempts=0,
            chunks_total=0,
            chunks_embedded=0,
            updated_at=timezone.now(),
        )
        if not updated:  # deleted meanwhile
            raise UploadRejected(filename, "the document was deleted while uploading")
        _enqueue_after_commit(document.pk)
        # The previous version's file is no longer needed once this commits.
        transaction.on_commit(lambda: document.file.storage.delete(old_file) if old_file else None)
    document.refresh_from_db()
    logger.info("document %s: new version %s", document.pk, document.version)
    return UploadOutcome(document, UploadResult.UPDATED)


def _enqueue_after_commit(document_id: int) -> None:
    from ingest.tasks import document_ingest_task

    transaction.on_commit(lambda: document_ingest_task.delay(document_id))
