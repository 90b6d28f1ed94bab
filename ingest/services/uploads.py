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
from django.core.files.storage import Storage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config.dispatch import enqueue_on_commit
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
    (UPDATED); its old chunks stay searchable, and its file is kept, until the new
    version is ready (a new version that fails loses nothing). Raises UploadRejected
    for files that are empty, too large or of a type Cairn cannot read.
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
    """Make ``upload`` the document's next version, keeping the live version's file.

    Until the new version is ready, search serves the live one, so its file is kept as
    ``previous_file`` (downloadable, deleted by the pipeline's swap-in). A replaced file
    that nothing serves (a version that failed or never finished) goes after commit.
    """
    document.file.save(filename, upload, save=False)
    new_file = document.file.name or ""
    storage = document.file.storage
    with transaction.atomic():
        # Under the row lock the pipeline's swap-in takes too: either it made the old
        # version live before this, or it will see the new version and step aside.
        current = Document.objects.select_for_update().filter(pk=document.pk).first()
        if current is not None:
            _version_add(current, new_file, filename, content_hash, mime_type, upload.size)
    if current is None:  # deleted meanwhile
        _files_delete(storage, [new_file])
        raise UploadRejected(filename, "the document was deleted while uploading")
    document.refresh_from_db()
    logger.info("document %s: new version %s", document.pk, document.version)
    return UploadOutcome(document, UploadResult.UPDATED)


def _version_add(
    current: Document,
    new_file: str,
    filename: str,
    content_hash: str,
    mime_type: str,
    size: int | None,
) -> None:
    """Point the locked row at its next version, inside the caller's transaction."""
    kept: dict[str, object] = {}
    obsolete = current.file.name  # a version nothing serves (failed, or never finished)
    if current.live_version is not None and current.live_version == current.version:
        # The file being replaced is the one search serves: keep it until the new
        # version is ready.
        obsolete = current.previous_file.name  # empty while the live version is current
        kept = {
            "previous_file": current.file.name,
            "previous_filename": current.original_filename,
            "previous_mime_type": current.mime_type,
        }
    Document.objects.filter(pk=current.pk).update(
        **kept,
        file=new_file,
        original_filename=filename,
        content_hash=content_hash,
        mime_type=mime_type,
        size_bytes=size,
        version=F("version") + 1,
        status=Document.Status.PENDING,
        error="",
        attempts=0,
        chunks_total=0,
        chunks_embedded=0,
        updated_at=timezone.now(),
    )
    _enqueue_after_commit(current.pk)
    if obsolete:
        storage = current.file.storage
        transaction.on_commit(lambda: _files_delete(storage, [obsolete]))


def _files_delete(storage: Storage, names: list[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except OSError:
            logger.warning("could not delete stored file %s", name, exc_info=True)


def _enqueue_after_commit(document_id: int) -> None:
    enqueue_on_commit("ingest.tasks.document_ingest_task", document_id)
