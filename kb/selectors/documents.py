"""Reading one document the way a citation shows it: its text cut at chunk boundaries.

Citations link to ``/documents/<id>/?chunk=<chunk id>#chunk-<chunk id>``. The page
shows the parsed text once, with an anchor where each chunk starts and the cited
chunk highlighted. Chunks may overlap (a section continuing in the next chunk
repeats its last sentences) and bare headings may sit between chunks, so the text
is not the concatenation of the chunks: it is cut at every chunk boundary into
segments, each knowing which chunks cover it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404

from kb.models import Chunk, Document
from kb.selectors.accounts import AnyUser, accounts_for_user


def document_for_user(*, user: AnyUser, document_id: int) -> Document:
    """The document ``document_id`` if ``user`` may read it, with its knowledge base.

    Raises ``Http404`` alike for a missing document and for another account's, so
    nobody learns which ids exist elsewhere. The account filter is part of the SQL.
    """
    document = (
        Document.objects.filter(id=document_id, account__in=accounts_for_user(user=user))
        .select_related("knowledge_base")
        .first()
    )
    if document is None:
        raise Http404("No such document.")
    return document


@dataclass(frozen=True)
class ChunkAnchor:
    """A chunk starting where a segment starts: its ``id="chunk-<id>"`` and ¶ link go there."""

    chunk_id: int
    ordinal: int
    heading_path: str
    page: int | None
    # The first chunk on a new page: a "Page N" marker goes before its anchor.
    page_changes: bool
    cited: bool


@dataclass(frozen=True)
class Segment:
    """A stretch of the parsed text covered by one unchanging set of chunks.

    ``chunk_ids`` is empty for text outside every chunk (a bare heading, blank lines).
    """

    text: str
    char_start: int
    char_end: int
    chunk_ids: tuple[int, ...]
    anchors: tuple[ChunkAnchor, ...]
    cited: bool
    # The first segment of the cited chunk: where the highlight begins.
    cited_start: bool

    @property
    def chunk_ids_attr(self) -> str:
        """``chunk_ids`` space-separated, for a ``data-chunks`` attribute."""
        return " ".join(str(chunk_id) for chunk_id in self.chunk_ids)


@dataclass(frozen=True)
class DocumentReading:
    """What the document page shows: the text in segments and what was cited."""

    document: Document
    segments: tuple[Segment, ...]
    chunk_count: int
    # The cited chunk when it is one of the chunks shown, else None.
    cited_chunk_id: int | None
    cited_heading_path: str
    # A chunk was asked for that the shown version does not have (re-ingested since).
    cited_missing: bool

    @property
    def is_ready(self) -> bool:
        return self.document.status == Document.Status.READY

    @property
    def shows_previous_version(self) -> bool:
        """A newer version is pending, processing or failed while the old text is shown."""
        return not self.is_ready and bool(self.document.parsed_text)


@dataclass(frozen=True)
class _Span:
    chunk_id: int
    ordinal: int
    heading_path: str
    page: int | None
    start: int
    end: int


def document_reading(*, document: Document, cited_chunk_id: int | None = None) -> DocumentReading:
    """``document``'s parsed text cut into segments at its chunks' boundaries, in one query.

    Every character of ``parsed_text`` appears in exactly one segment, in order, so
    overlapping chunks are shown once. Each chunk gets an anchor on the segment
    where it starts; the segments inside ``cited_chunk_id``'s span are marked cited.

    Which chunks: those of the version whose text is shown. Ingestion replaces a
    document's chunks and ``parsed_text`` in one transaction, so the stored chunks
    always belong to that text; while a newer upload is pending, processing or has
    failed, ``document.version`` is already the new number but the text, the chunks
    and search still serve the previous version, so those chunks stay anchored
    (and citations made from them still land). Should chunks of several versions
    ever coexist, only the newest is used.

    Offsets outside the text are clamped rather than trusted, so a bad span can
    shift a highlight but never drop or repeat text.
    """
    text = document.parsed_text
    rows = list(
        Chunk.objects.filter(
            account_id=document.account_id,
            knowledge_base_id=document.knowledge_base_id,
            document_id=document.pk,
            document_version__lte=document.version,
        )
        .order_by("char_start", "ordinal")
        .values_list(
            "id", "document_version", "ordinal", "heading_path", "page", "char_start", "char_end"
        )
    )
    shown_version = max((row[1] for row in rows), default=None)
    length = len(text)
    spans: list[_Span] = []
    for chunk_id, version, ordinal, heading_path, page, char_start, char_end in rows:
        if version != shown_version:
            continue
        start = min(char_start, length)
        spans.append(
            _Span(chunk_id, ordinal, heading_path, page, start, max(start, min(char_end, length)))
        )

    cited = next((span for span in spans if span.chunk_id == cited_chunk_id), None)
    return DocumentReading(
        document=document,
        segments=tuple(_segments(text, spans, cited.chunk_id if cited else None)),
        chunk_count=len(spans),
        cited_chunk_id=cited.chunk_id if cited else None,
        cited_heading_path=cited.heading_path if cited else "",
        cited_missing=cited_chunk_id is not None and cited is None,
    )


def _segments(text: str, spans: list[_Span], cited_id: int | None) -> list[Segment]:
    """Sweep the boundaries left to right, keeping the chunks that cover the current one.

    ``spans`` is sorted by start. A segment runs from one boundary to the next; an
    empty segment is kept only to carry anchors (an empty chunk, or one at the very end).
    """
    boundaries = sorted({0, len(text)} | {s.start for s in spans} | {s.end for s in spans})
    starting: dict[int, list[_Span]] = {}
    for span in spans:
        starting.setdefault(span.start, []).append(span)

    segments: list[Segment] = []
    active: list[_Span] = []
    last_page: int | None = None
    cited_seen = False
    for index, position in enumerate(boundaries):
        following = boundaries[index + 1] if index + 1 < len(boundaries) else position
        here = starting.get(position, [])
        active = [span for span in active if span.end > position]
        active.extend(span for span in here if span.end > position)
        if following == position and not here:
            continue
        anchors = []
        for span in here:
            page_changes = span.page is not None and span.page != last_page
            if span.page is not None:
                last_page = span.page
            anchors.append(
                ChunkAnchor(
                    chunk_id=span.chunk_id,
                    ordinal=span.ordinal,
                    heading_path=span.heading_path,
                    page=span.page,
                    page_changes=page_changes,
                    cited=span.chunk_id == cited_id,
                )
            )
        chunk_ids = tuple(span.chunk_id for span in active)
        # An empty cited chunk has no text to highlight; its anchor still marks the spot.
        cited = cited_id is not None and cited_id in chunk_ids
        segments.append(
            Segment(
                text=text[position:following],
                char_start=position,
                char_end=following,
                chunk_ids=chunk_ids,
                anchors=tuple(anchors),
                cited=cited,
                cited_start=cited and not cited_seen,
            )
        )
        cited_seen = cited_seen or cited
    return segments
