"""texts_embed: embeddings of short texts (quotable units), computed once.

The same chunks come back for question after question, and embedding their sentences is
the slow part of reranking, of the extractive answerer and of the citation check. So a
text's vector is looked for, in order:

1. in this process's memory (an LRU of ``_CACHE_SIZE`` vectors);
2. in the ``TextEmbedding`` table, one query for every text still missing, when the
   caller says which knowledge base the texts belong to (rows are per knowledge base, so
   deleting one deletes its vectors; another tenant's rows are never read);
3. from the embedder, and then written through to both.

Ingestion fills the table for every unit of a new document in the background
(kb.services.units), so searches normally find every vector in step 1 or 2. The table
holds the embedder's float32 bytes, so a vector read back is the one computed. Reading or
writing the table never fails a search: on a database error the texts are embedded (or
simply not stored) and a warning is logged; inside a caller's transaction both run in a
savepoint, so a failed statement does not break the caller's transaction either.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np
import numpy.typing as npt
from django.db import DatabaseError, connection, transaction

from kb.embeddings.registry import get_embedder
from kb.models import TextEmbedding

logger = logging.getLogger(__name__)

_CACHE_SIZE = 16_384  # ~25 MB of MiniLM vectors
_WRITE_BATCH = 500
_cache: OrderedDict[tuple[str, str], npt.NDArray[np.float32]] = OrderedDict()
_lock = threading.Lock()

# One knowledge base for every text, one per text (None: that text is not stored), or none.
Owners = int | Sequence[int | None] | None

_READ = (
    "SELECT t.knowledge_base_id, t.digest, t.vector FROM kb_textembedding t "
    "JOIN unnest(%s::bigint[], %s::bytea[]) AS wanted(knowledge_base_id, digest) "
    "ON t.knowledge_base_id = wanted.knowledge_base_id AND t.digest = wanted.digest "
    "WHERE t.model_id = %s"
)


def text_digest(text: str) -> bytes:
    """The key of a text in the table: SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def texts_embed(
    model_id: str, texts: Sequence[str], *, knowledge_base_id: Owners = None
) -> npt.NDArray[np.float32]:
    """One normalised vector per text (rows in the order given).

    ``knowledge_base_id``: the knowledge base the texts come from (or one per text, as a
    pool of hits from several has them), so stored vectors are read and new ones stored;
    without it only this process's memory is used.
    """
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    owners = _owners(knowledge_base_id, len(texts))
    found = _remembered(model_id, texts)
    stored = {
        (owner, text)
        for owner, text in zip(owners, texts, strict=True)
        if owner is not None and text not in found
    }
    if stored:
        read = _stored_read(model_id, stored)
        found.update(read)
        _remember(model_id, read)
    missing = list(dict.fromkeys(t for t in texts if t not in found))
    if missing:
        computed = dict(zip(missing, _embedded(model_id, missing), strict=True))
        found.update(computed)
        _remember(model_id, computed)
        _stored_write(
            model_id,
            [(owner, text, computed[text]) for owner, text in stored if text in computed],
        )
    return np.asarray([found[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)


def texts_store(*, knowledge_base_id: int, model_id: str, texts: Sequence[str]) -> int:
    """Store the vectors of those ``texts`` the knowledge base lacks for ``model_id``
    (computed unless this process remembers them); the number of rows written.

    For filling the table ahead of searches (kb.services.units). Unlike texts_embed, a
    failed write raises: the caller (a task) retries.
    """
    unique = list(dict.fromkeys(texts))
    digests = {text: text_digest(text) for text in unique}
    present = {
        bytes(digest)
        for digest in TextEmbedding.objects.filter(
            knowledge_base_id=knowledge_base_id, model_id=model_id,
            digest__in=list(digests.values()),
        ).values_list("digest", flat=True)
    }  # fmt: skip
    todo = [text for text in unique if digests[text] not in present]
    if not todo:
        return 0
    found = _remembered(model_id, todo)
    missing = [text for text in todo if text not in found]
    if missing:
        computed = dict(zip(missing, _embedded(model_id, missing), strict=True))
        found.update(computed)
        _remember(model_id, computed)
    rows = [(knowledge_base_id, text, found[text]) for text in todo]
    _rows_insert(model_id, rows)
    return len(rows)


def texts_remember(model_id: str, texts: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
    """Seed the cache with vectors computed elsewhere (evaluation, benchmarks)."""
    _remember(model_id, dict(zip(texts, vectors, strict=True)))


def texts_forget() -> None:
    """Empty this process's memory of vectors (what a fresh process starts with)."""
    with _lock:
        _cache.clear()


# --- the three places a vector comes from --------------------------------------------


def _owners(knowledge_base_id: Owners, count: int) -> list[int | None]:
    if knowledge_base_id is None or isinstance(knowledge_base_id, int):
        return [knowledge_base_id] * count
    owners = list(knowledge_base_id)
    if len(owners) != count:
        raise ValueError(f"{len(owners)} knowledge base ids for {count} texts")
    return owners


def _remembered(model_id: str, texts: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
    found: dict[str, npt.NDArray[np.float32]] = {}
    with _lock:
        for text in texts:
            vector = _cache.get((model_id, text))
            if vector is not None:
                _cache.move_to_end((model_id, text))  # recently used: keep
                found[text] = vector
    return found


def _remember(model_id: str, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
    with _lock:
        for text, vector in vectors.items():
            _cache[(model_id, text)] = np.asarray(vector, dtype=np.float32)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _embedded(model_id: str, texts: list[str]) -> npt.NDArray[np.float32]:
    return np.asarray(get_embedder(model_id).embed(texts), dtype=np.float32)


@contextmanager
def _statement_isolated() -> Iterator[None]:
    """Inside a caller's transaction, a savepoint: a failed statement rolls back to it
    and the caller's transaction goes on (Django's atomic() marks it, we catch outside)."""
    with transaction.atomic() if connection.in_atomic_block else nullcontext():
        yield


def _stored_read(model_id: str, pairs: set[tuple[int, str]]) -> dict[str, npt.NDArray[np.float32]]:
    """The stored vectors of (knowledge base, text) pairs, by text: one query."""
    ordered = sorted(pairs)
    digest_text = {(owner, text_digest(text)): text for owner, text in ordered}
    try:
        with _statement_isolated(), connection.cursor() as cursor:
            cursor.execute(
                _READ, [[owner for owner, _ in ordered], [d for _, d in digest_text], model_id]
            )
            rows = cursor.fetchall()
    except DatabaseError:
        logger.warning("could not read stored text embeddings; embedding", exc_info=True)
        return {}
    found: dict[str, npt.NDArray[np.float32]] = {}
    for owner, digest, vector in rows:
        text = digest_text.get((owner, bytes(digest)))
        if text is not None:
            found[text] = np.frombuffer(bytes(vector), dtype=np.float32)
    return found


def _stored_write(model_id: str, rows: list[tuple[int, str, npt.NDArray[np.float32]]]) -> None:
    """Store freshly computed vectors; a failure is logged, never raised."""
    if not rows:
        return
    try:
        _rows_insert(model_id, rows)
    except DatabaseError:
        logger.warning("could not store %s text embeddings", len(rows), exc_info=True)


def _rows_insert(model_id: str, rows: list[tuple[int, str, npt.NDArray[np.float32]]]) -> None:
    objects = [
        TextEmbedding(
            knowledge_base_id=owner, model_id=model_id, digest=text_digest(text),
            vector=np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
        )
        for owner, text, vector in rows
    ]  # fmt: skip
    with _statement_isolated():
        TextEmbedding.objects.bulk_create(objects, batch_size=_WRITE_BATCH, ignore_conflicts=True)
