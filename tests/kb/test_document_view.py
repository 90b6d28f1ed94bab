"""The document view that citations link to: text once, an anchor per chunk, the cited
chunk highlighted, and nothing shown to anyone outside the document's account."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kb.models import EMBEDDING_DIMENSION, Chunk, Document, KnowledgeBase
from tests.factories import make_account, make_document, make_knowledge_base, make_user

pytestmark = pytest.mark.django_db

S1 = "Customers may request a refund within 30 days of payment."
S2 = "Refunds go back to the card that paid."
S3 = "Bank transfers are refunded by transfer."
S4 = "Enterprise refunds are prorated by the day."
# A bare heading ("Enterprise plans") sits between the chunks; the second chunk
# repeats S2, the way the chunker carries a section's last sentence over.
TEXT = f"Refunds\n\n{S1} {S2} {S3}\n\nEnterprise plans\n\n{S4}\n"


@dataclass
class Page:
    """What a reader gets from the document page, read back from its HTML."""

    text: str = ""  # every segment's text, in order
    cited_text: str = ""  # the text of the highlighted segments, in order
    anchors: list[tuple[str, int]] = field(default_factory=list)  # (id, text offset)
    cited_anchor_ids: list[str] = field(default_factory=list)
    page_markers: list[str] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self._in: str | None = None  # "segment", "cited" or "marker"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        if "segment" in classes:
            self._in = "cited" if tag == "mark" and "cited" in classes else "segment"
        elif "page-marker" in classes:
            self._in = "marker"
            self.page.page_markers.append("")
        elif "chunk-anchor" in classes:
            anchor_id = values.get("id") or ""
            self.page.anchors.append((anchor_id, len(self.page.text)))
            if values.get("aria-current"):
                self.page.cited_anchor_ids.append(anchor_id)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("span", "mark"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in in ("segment", "cited"):
            self.page.text += data
        if self._in == "cited":
            self.page.cited_text += data
        if self._in == "marker":
            self.page.page_markers[-1] += data


def _read(html: str) -> Page:
    parser = _PageParser()
    parser.feed(html)
    return parser.page


def _add_chunk(
    document: Document,
    start: int,
    end: int,
    *,
    ordinal: int,
    version: int | None = None,
    heading_path: str = "Refunds",
    page: int | None = None,
) -> Chunk:
    return Chunk.objects.create(
        document=document,
        account=document.account,
        knowledge_base=document.knowledge_base,
        document_version=document.version if version is None else version,
        ordinal=ordinal,
        text=document.parsed_text[start:end],
        heading_path=heading_path,
        char_start=start,
        char_end=end,
        page=page,
        token_count=(end - start) // 4,
        embedding=[1.0] + [0.0] * (EMBEDDING_DIMENSION - 1),
    )


def _ready_document(knowledge_base: KnowledgeBase, text: str = TEXT, **fields) -> Document:
    document = make_document(knowledge_base)
    document.parsed_text = text
    document.status = Document.Status.READY
    for name, value in fields.items():
        setattr(document, name, value)
    document.save()
    return document


def _refund_chunks(document: Document) -> list[Chunk]:
    """Three chunks: S1 S2 | S2 S3 (overlapping S2) | S4 (after a bare heading)."""
    text = document.parsed_text
    return [
        _add_chunk(document, text.index(S1), text.index(S2) + len(S2), ordinal=0),
        _add_chunk(document, text.index(S2), text.index(S3) + len(S3), ordinal=1),
        _add_chunk(
            document,
            text.index(S4),
            text.index(S4) + len(S4),
            ordinal=2,
            heading_path="Refunds > Enterprise plans",
        ),
    ]


def _url(document: Document, chunk_id: int | None = None) -> str:
    url = reverse("kb:document_detail", args=[document.id])
    return url if chunk_id is None else f"{url}?chunk={chunk_id}#chunk-{chunk_id}"


@pytest.fixture
def member(kb):
    return make_user(staff=False, account=kb.account, role="staff")


def test_member_sees_the_text_once_with_an_anchor_where_each_chunk_starts(client, kb, member):
    # given a ready document whose chunks overlap, with a bare heading between them
    document = _ready_document(kb, title="Refund policy")
    chunks = _refund_chunks(document)
    client.force_login(member)

    # when a member of its account opens it
    response = client.get(_url(document))

    # then the text is there exactly once, and each chunk's anchor sits at its start
    assert response.status_code == 200
    page = _read(response.content.decode())
    assert page.text == TEXT
    assert page.anchors == [(f"chunk-{chunk.id}", chunk.char_start) for chunk in chunks]
    assert page.cited_text == ""
    assert "Refund policy" in response.content.decode()
    assert kb.name in response.content.decode()


def test_the_cited_chunk_is_highlighted_whole_and_nothing_else(client, kb, member):
    # given the overlapping chunks, the second of which is cited
    document = _ready_document(kb)
    chunks = _refund_chunks(document)
    client.force_login(member)

    # when the citation link is followed
    response = client.get(_url(document, chunks[1].id))

    # then exactly that chunk's span is highlighted, the shared sentence once
    page = _read(response.content.decode())
    assert page.text == TEXT
    assert page.cited_text == chunks[1].text == f"{S2} {S3}"
    assert page.cited_anchor_ids == [f"chunk-{chunks[1].id}"]
    assert "has changed since it was cited" not in response.content.decode()


def test_a_chunk_that_no_longer_exists_gives_a_notice_and_no_highlight(client, kb, member):
    # given a document re-ingested since the citation: the cited chunk is gone
    document = _ready_document(kb, version=2)
    chunks = _refund_chunks(document)
    gone_id = max(chunk.id for chunk in chunks) + 1000  # deleted by the re-ingestion
    client.force_login(member)

    # when the old citation is followed
    response = client.get(_url(document, gone_id))

    # then the reader is told, and the current text is shown without a highlight
    assert response.status_code == 200
    assert "This passage has changed since it was cited" in response.content.decode()
    page = _read(response.content.decode())
    assert page.cited_text == ""
    assert page.text == TEXT
    assert len(page.anchors) == len(chunks)


def test_chunks_of_an_older_version_are_neither_anchored_nor_highlighted(client, kb, member):
    # given leftover chunks of version 1 beside the current version 2
    document = _ready_document(kb, version=2)
    current = _refund_chunks(document)
    old = _add_chunk(document, 0, len(TEXT), ordinal=0, version=1)
    client.force_login(member)

    # when a citation of the old chunk is followed
    response = client.get(_url(document, old.id))

    # then only the current chunks are anchored, and the old citation counts as changed
    page = _read(response.content.decode())
    assert [anchor_id for anchor_id, _ in page.anchors] == [f"chunk-{c.id}" for c in current]
    assert page.cited_text == ""
    assert "This passage has changed since it was cited" in response.content.decode()


def test_while_a_new_version_is_pending_the_previous_text_stays_citable(client, kb, member):
    # given version 2 uploaded and waiting, while text and chunks are still version 1's
    document = _ready_document(kb)
    chunks = _refund_chunks(document)
    Document.objects.filter(pk=document.pk).update(version=2, status=Document.Status.PENDING)
    client.force_login(member)

    # when a citation made from version 1 is followed
    response = client.get(_url(document, chunks[0].id))

    # then it still lands on its passage, and the page says a newer version is on its way
    page = _read(response.content.decode())
    assert page.cited_text == f"{S1} {S2}"
    assert "Version 2 of this document is waiting to be processed" in response.content.decode()


def test_a_document_not_yet_processed_says_so(client, kb, member):
    # given an uploaded document that has not been parsed yet
    document = make_document(kb)
    client.force_login(member)

    # when it is opened
    response = client.get(_url(document))

    # then the page says so plainly
    assert response.status_code == 200
    assert "This document is waiting to be processed" in response.content.decode()
    assert _read(response.content.decode()).text == ""


def test_a_failed_document_shows_why(client, kb, member):
    # given a document whose ingestion failed
    document = make_document(kb)
    document.status = Document.Status.FAILED
    document.error = "the PDF is encrypted"
    document.save()
    client.force_login(member)

    # when it is opened
    response = client.get(_url(document))

    # then the reason is shown
    assert "This document could not be processed: the PDF is encrypted" in (
        response.content.decode()
    )


def test_a_span_past_the_end_of_the_text_never_loses_or_repeats_text(client, kb, member):
    # given a chunk whose stored span runs past the end of the parsed text
    document = _ready_document(kb)
    inside = _add_chunk(document, TEXT.index(S1), TEXT.index(S3), ordinal=0)
    past = _add_chunk(document, TEXT.index(S3), len(TEXT) + 50, ordinal=1)
    client.force_login(member)

    # when it is cited
    page = _read(client.get(_url(document, past.id)).content.decode())

    # then the text is shown once and the highlight stops at the end of the text
    assert page.text == TEXT
    assert page.cited_text == TEXT[TEXT.index(S3) :]
    assert [anchor_id for anchor_id, _ in page.anchors] == [
        f"chunk-{inside.id}",
        f"chunk-{past.id}",
    ]


def test_a_page_marker_where_the_page_changes(client, kb, member):
    # given a PDF's chunks on pages 1, 1 and 2
    document = _ready_document(kb, page_count=2)
    text = document.parsed_text
    _add_chunk(document, text.index(S1), text.index(S1) + len(S1), ordinal=0, page=1)
    _add_chunk(document, text.index(S2), text.index(S3) + len(S3), ordinal=1, page=1)
    _add_chunk(document, text.index(S4), text.index(S4) + len(S4), ordinal=2, page=2)
    client.force_login(member)

    # when it is opened
    page = _read(client.get(_url(document)).content.decode())

    # then each page is marked once, where it begins
    assert page.page_markers == ["Page 1", "Page 2"]
    assert page.text == TEXT


def test_another_accounts_member_gets_404_like_a_missing_document(client, kb):
    # given a document of one account and a member of another
    document = _ready_document(kb)
    chunks = _refund_chunks(document)
    outsider = make_user(account=make_account("Rival"))
    client.force_login(outsider)

    # when the outsider follows a citation link, or guesses an id that does not exist
    theirs = client.get(_url(document, chunks[0].id))
    missing = client.get(reverse("kb:document_detail", args=[document.id + 10_000]))

    # then both are the same 404 and nothing of the document is shown
    assert theirs.status_code == missing.status_code == 404
    assert S1 not in theirs.content.decode()
    assert document.title not in theirs.content.decode()


def test_a_superuser_sees_any_accounts_document(client, kb):
    document = _ready_document(kb)
    admin = get_user_model().objects.create_superuser("root", password="correct horse battery")
    client.force_login(admin)

    assert client.get(_url(document)).status_code == 200


def test_anonymous_visitors_are_sent_to_log_in(client, kb):
    # given a document and a visitor who is not logged in
    document = _ready_document(kb)

    # when they follow a citation link
    response = client.get(_url(document))

    # then they are redirected to the login page, which brings them back afterwards
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "next=" in response["Location"]


def test_hostile_document_text_is_escaped(client, kb, member):
    # given a document whose text, title and headings carry markup
    hostile = "<script>alert(1)</script>"
    text = f"Intro\n\n{hostile} & more <b>bold</b>\n"
    document = _ready_document(kb, text=text, title=f"{hostile} title")
    _add_chunk(
        document,
        text.index(hostile),
        len(text) - 1,
        ordinal=0,
        heading_path='"><img src=x onerror=alert(1)>',
    )
    client.force_login(member)

    # when it is opened
    response = client.get(_url(document))

    # then the markup is shown as text, never run
    html = response.content.decode()
    assert hostile not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert _read(html).text == text


def test_query_count_does_not_grow_with_the_number_of_chunks(client, kb, member):
    # given a small and a large document
    small = _ready_document(kb)
    small_chunks = _refund_chunks(small)
    sentence = "A sentence of a long handbook. "
    # (make_document leaves the source empty, which is unique per knowledge base)
    large = _ready_document(make_knowledge_base(kb.account, "Handbooks"), text=sentence * 60)
    for ordinal in range(60):
        start = ordinal * len(sentence)
        _add_chunk(large, start, start + len(sentence) - 1, ordinal=ordinal, page=ordinal // 10 + 1)
    client.force_login(member)

    # when each is opened with a citation
    with CaptureQueriesContext(connection) as small_queries:
        assert client.get(_url(small, small_chunks[0].id)).status_code == 200
    with CaptureQueriesContext(connection) as large_queries:
        assert client.get(_url(large)).status_code == 200

    # then both take the same few queries
    assert len(small_queries) == len(large_queries)


def test_query_count_is_small(client, kb, member, django_assert_max_num_queries):
    document = _ready_document(kb)
    chunks = _refund_chunks(document)
    client.force_login(member)

    # session, user, memberships, document, chunks; then the audit row: its INSERT, in a
    # savepoint here because the test runs in a transaction (one INSERT in production)
    with django_assert_max_num_queries(8):
        client.get(_url(document, chunks[2].id))
