"""Tenant isolation matrix: whichever path account B takes, it never reaches account A's content.

Accounts A (Alder) and B (Birch) hold the same two articles, with the same titles and
structure, in knowledge bases of the same name; only the facts differ: Alder refunds
annual plans within 41 days, Birch within 17, and their payout delays, passphrases,
mailboxes and prices differ too. One test per path a user or an API key of B can take
(the chat pages, the answer stream, the REST API, the OpenAI-compatible endpoint,
citations, the document view, search, the answer caches, the admin, tickets and queues)
checks that B gets B's facts, so that an empty response cannot pass, and none of A's.

The accounts are ingested (chunked and embedded with the bundled MiniLM) and their first
answers written once for the module, committed, as in tests/kb/test_vector_search.py:
ingesting and answering cost seconds, and the live server's threads must see the rows.
Each test runs in its own transaction on top; what the live server writes is committed
and goes with the accounts when the module ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from typing import Any

import httpx2
import openai
import pytest
import sseclient
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.models import Session
from django.db.models import Max
from django.http import Http404
from django.test import Client, override_settings
from django.urls import reverse
from openai.types.chat import ChatCompletionMessageParam
from rest_framework.test import APIClient

from chat.models import Citation, Conversation, Message
from chat.presentation import citation_url
from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from flags.models import Flag
from flags.selectors import flags_for, subject_for
from ingest.services.pipeline import document_ingest
from kb.models import Account, ApiKey, AuditEvent, Chunk, Document, KnowledgeBase
from kb.services.api_keys import api_key_create
from llm.models import LlmCall, SemanticCacheEntry
from tests.factories import make_account, make_knowledge_base, make_user, upload
from tests.support.live_server import LiveServer, running_asgi_server
from tickets.models import Queue, RoutingRule, Ticket, TicketEvent, TicketSettings
from tickets.selectors.tickets import queues_visible, ticket_get, tickets_list, tickets_visible
from tickets.services.tickets import ticket_note_add, ticket_open, ticket_open_from_conversation
from tickets.services.triage import ticket_triage

pytestmark = pytest.mark.django_db

# --- the two accounts -----------------------------------------------------------------------

REFUNDS = """# Refunds

Annual plans can be refunded within {refund_window} of purchase, pro rata.
Monthly plans are not refunded, but you can cancel at any time before the next billing date.

## How to ask for a refund

Write to {mailbox} with your workspace name and the passphrase "{passphrase}".
Refunds arrive within {payout}.
"""

PLANS = """# Plans and prices

## Growth plan

The Growth plan costs {growth_price} per month. It includes five users and unlimited invoices.

## Starter plan

The Starter plan costs {starter_price} per month and includes one user.
"""


@dataclass(frozen=True)
class Facts:
    """What one account's articles say and the other's do not."""

    refund_window: str
    payout: str
    passphrase: str
    mailbox: str
    growth_price: str
    starter_price: str

    def articles(self) -> dict[str, bytes]:
        facts = vars(self)
        return {
            "refunds.md": REFUNDS.format(**facts).encode(),
            "plans.md": PLANS.format(**facts).encode(),
        }

    def found_in(self, text: str) -> list[str]:
        return [fact for fact in astuple(self) if fact in text]


ALDER = Facts(
    refund_window="41 days", payout="6 business days", passphrase="amber lighthouse",
    mailbox="billing@alder.example", growth_price="$59", starter_price="$19",
)  # fmt: skip
BIRCH = Facts(
    refund_window="17 days", payout="9 business days", passphrase="cobalt harbour",
    mailbox="billing@birch.example", growth_price="$37", starter_price="$12",
)  # fmt: skip

REFUND_QUESTION = "How many days do I have to ask for a refund of an annual plan?"
STARTER_QUESTION = "How much does the Starter plan cost?"
PAYOUT_QUESTION = "How long does it take for a refund to arrive?"
GROWTH_QUESTION = "How much does the Growth plan cost per month?"
# The same question, reworded: the semantic cache may serve it.
GROWTH_PARAPHRASE = "Hi, how much does the Growth plan cost per month? Thanks"

CITED = re.compile(r"/documents/(\d+)/\?chunk=(\d+)")


@dataclass(frozen=True)
class Tenant:
    account: Account
    knowledge_base: KnowledgeBase
    documents: tuple[Document, ...]
    chunks: tuple[Chunk, ...]
    member: AbstractUser  # a support agent who chats (staff role, no admin access)
    api_key: str  # scopes read, answer and ingest
    chat_answer: Message  # the member's answered question about the refund window
    api_answer: Message  # the same question asked with the API key
    facts: Facts

    @property
    def document_ids(self) -> set[int]:
        return {document.pk for document in self.documents}

    @property
    def chunk_ids(self) -> set[int]:
        return {chunk.pk for chunk in self.chunks}

    def api(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.api_key}")
        return client


@dataclass(frozen=True)
class World:
    a: Tenant
    b: Tenant
    b_admin: AbstractUser  # staff, with an admin membership of B; not a superuser

    def assert_only_b(self, text: str, *expected: str) -> None:
        """``text`` holds B's ``expected`` facts and none of A's."""
        leaked = self.a.facts.found_in(text)
        assert not leaked, f"account A's facts reached account B: {leaked}\n{text}"
        missing = [fact for fact in expected if fact not in text]
        assert not missing, f"account B's own facts are missing: {missing}\n{text}"


def _answered(message: Message) -> Message:
    list(answer_stream(message_id=message.pk, cancelled=lambda: False))
    return Message.objects.get(pk=message.pk)


def _tenant(name: str, facts: Facts) -> Tenant:
    account = make_account(name)
    knowledge_base = make_knowledge_base(account, "Support")
    for filename, content in facts.articles().items():
        document_ingest(document_id=upload(knowledge_base, filename, content).document.pk)
    member = make_user(staff=False, account=account, role="staff")
    key_row, key = api_key_create(
        account=account, name="isolation", scopes=["read", "answer", "ingest"]
    )
    _, chat_answer = conversation_start(
        user_id=member.pk, knowledge_base=knowledge_base, text=REFUND_QUESTION
    )
    _, api_answer = conversation_start(
        user_id=None, api_key_id=key_row.pk, knowledge_base=knowledge_base, text=REFUND_QUESTION
    )
    return Tenant(
        account=account,
        knowledge_base=knowledge_base,
        documents=tuple(Document.objects.filter(account=account).order_by("id")),
        chunks=tuple(Chunk.objects.filter(account=account).order_by("id")),
        member=member,
        api_key=key,
        chat_answer=_answered(chat_answer),
        api_answer=_answered(api_answer),
        facts=facts,
    )


# Rows the module commits, found by id above what existed before it: deleting the accounts
# and users takes everything of theirs; audit events would only lose their account, and the
# injection guard's embeddings in the ledger belong to no account.
COMMITTED = (AuditEvent, Account, get_user_model(), LlmCall)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[World]:
    """Accounts A and B, ingested and with their first answers, committed for the module."""
    committed = override_settings(
        MEDIA_ROOT=tmp_path_factory.mktemp("media"),
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
    with django_db_blocker.unblock():
        before = {
            model: model.objects.aggregate(last=Max("id"))["last"] or 0 for model in COMMITTED
        }
    try:
        with django_db_blocker.unblock(), committed:
            a, b = _tenant("Alder", ALDER), _tenant("Birch", BIRCH)
            b_admin = make_user(staff=True, account=b.account, role="admin")
        yield World(a=a, b=b, b_admin=b_admin)
    finally:
        with django_db_blocker.unblock():
            for model, last in before.items():
                model.objects.filter(id__gt=last).delete()


@pytest.fixture
def live() -> Iterator[LiveServer]:
    with running_asgi_server() as server:
        yield server


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cited(html: str) -> set[tuple[int, int]]:
    """(document id, chunk id) of every citation link in ``html``."""
    return {(int(document), int(chunk)) for document, chunk in CITED.findall(html)}


def citation_ids(citations: list[dict]) -> tuple[set[int], set[int]]:
    """(document ids, chunk ids) of the API's citations."""
    return {c["document_id"] for c in citations}, {c["chunk_id"] for c in citations}


def cited_by(answer: Message) -> list[Citation]:
    return list(Citation.objects.filter(message=answer, kind=Citation.Kind.CITED))


# --- 1. the chat pages ------------------------------------------------------------------------


def test_chat_ui_account_b_cannot_open_account_a_conversation(world) -> None:
    a, b = world.a, world.b
    client = logged_in(b.member)
    a_conversation, a_answer = a.chat_answer.conversation_id, a.chat_answer.pk

    home = client.get(reverse("chat:home")).content.decode()
    own = client.get(reverse("chat:conversation", args=[b.chat_answer.conversation_id]))
    refused = {
        "conversation": client.get(reverse("chat:conversation", args=[a_conversation])),
        "message": client.get(reverse("chat:message", args=[a_answer])),
        "ask": client.post(reverse("chat:ask", args=[a_conversation]), {"question": "And?"}),
        "stop": client.post(reverse("chat:stop", args=[a_answer])),
        "regenerate": client.post(reverse("chat:regenerate", args=[a_answer])),
        "feedback": client.post(reverse("chat:feedback", args=[a_answer]), {"rating": "up"}),
        "start in A": client.post(
            reverse("chat:conversation_start"),
            {"knowledge_base": a.knowledge_base.pk, "question": REFUND_QUESTION},
        ),
    }

    assert {path: r.status_code for path, r in refused.items()} == dict.fromkeys(refused, 404)
    for response in refused.values():
        world.assert_only_b(response.content.decode())
    # The conversation list links B's conversation and not A's (their titles are the same).
    assert reverse("chat:conversation", args=[b.chat_answer.conversation_id]) in home
    assert reverse("chat:conversation", args=[a_conversation]) not in home
    assert own.status_code == 200
    world.assert_only_b(own.content.decode(), b.facts.refund_window)
    assert Message.objects.filter(conversation_id=a_conversation).count() == 2  # nothing added


# --- 2. the answer stream ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pending_answers(world, django_db_blocker) -> Iterator[tuple[Message, Message, dict[str, str]]]:
    """(A's pending answer, B's pending answer, the session cookie of B's member), committed
    so that the live server's threads see them."""
    with django_db_blocker.unblock():
        _, a_pending = conversation_start(
            user_id=world.a.member.pk, knowledge_base=world.a.knowledge_base, text=STARTER_QUESTION
        )
        _, b_pending = conversation_start(
            user_id=world.b.member.pk, knowledge_base=world.b.knowledge_base, text=STARTER_QUESTION
        )
        browser = logged_in(world.b.member)
        session_key = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    yield a_pending, b_pending, {django_settings.SESSION_COOKIE_NAME: session_key}
    with django_db_blocker.unblock():
        Session.objects.filter(session_key=session_key).delete()


def test_answer_stream_account_b_cannot_open_account_a_pending_answer(
    world, pending_answers, live
) -> None:
    a_pending, b_pending, b_cookies = pending_answers

    with httpx2.Client(cookies=b_cookies, timeout=60) as browser:
        theirs = browser.get(f"{live.url}/chat/m/{a_pending.pk}/stream")
        with browser.stream("GET", f"{live.url}/chat/m/{b_pending.pk}/stream") as response:
            stream = sseclient.SSEClient(response.iter_bytes())
            events = [(event.event, event.data) for event in stream.events()]

    assert theirs.status_code == 404
    world.assert_only_b(theirs.text)
    assert Message.objects.get(pk=a_pending.pk).status == Message.Status.PENDING
    streamed = "".join(data for name, data in events if name == "token")
    assert events[-1][0] == "done"
    world.assert_only_b(streamed, world.b.facts.starter_price)
    final = events[-1][1]
    world.assert_only_b(final, world.b.facts.starter_price)
    sources = cited(final)
    assert sources, "the streamed answer cites its passage"
    assert {document for document, _ in sources} <= world.b.document_ids
    assert {chunk for _, chunk in sources} <= world.b.chunk_ids


# --- 3. the REST API --------------------------------------------------------------------------


def test_rest_api_account_b_key_gets_404_for_account_a_objects_and_lists_none(world) -> None:
    a, b = world.a, world.b
    client = b.api()
    a_conversation, a_answer = a.api_answer.conversation_id, a.api_answer.pk
    a_document = a.documents[0].pk

    refused = {
        "answer in A by slug": client.post(
            "/api/v1/answers",
            {"question": REFUND_QUESTION, "knowledge_base": a.knowledge_base.slug},
            format="json",
        ),
        "answer in A by id": client.post(
            "/api/v1/answers",
            {"question": REFUND_QUESTION, "knowledge_base": str(a.knowledge_base.pk)},
            format="json",
        ),
        "continue A's conversation": client.post(
            "/api/v1/answers",
            {"question": "And monthly plans?", "conversation_id": a_conversation},
            format="json",
        ),
        "A's messages": client.get(f"/api/v1/conversations/{a_conversation}/messages"),
        "feedback on A's answer": client.post(
            f"/api/v1/messages/{a_answer}/feedback", {"rating": "down"}, format="json"
        ),
        "A's document": client.get(f"/api/v1/documents/{a_document}"),
        "delete A's document": client.delete(f"/api/v1/documents/{a_document}"),
        "retry A's document": client.post(f"/api/v1/documents/{a_document}/retry"),
        "A's documents by knowledge base": client.get(
            "/api/v1/documents", {"knowledge_base": a.knowledge_base.slug}
        ),
    }
    conversations = client.get("/api/v1/conversations").json()
    documents = client.get("/api/v1/documents").json()["results"]
    knowledge_bases = client.get("/api/v1/knowledge-bases").json()["results"]
    own_messages = client.get(f"/api/v1/conversations/{b.api_answer.conversation_id}/messages")
    answer = client.post("/api/v1/answers", {"question": REFUND_QUESTION}, format="json").json()

    assert {path: r.status_code for path, r in refused.items()} == dict.fromkeys(refused, 404)
    for response in refused.values():
        world.assert_only_b(response.content.decode())
    assert Document.objects.filter(pk=a_document).exists()
    listed = {c["id"] for c in conversations}
    assert b.api_answer.conversation_id in listed and a_conversation not in listed
    assert set(Conversation.objects.filter(pk__in=listed).values_list("account_id", flat=True)) == {
        b.account.pk
    }
    assert {d["id"] for d in documents} == b.document_ids
    assert [k["id"] for k in knowledge_bases] == [b.knowledge_base.pk]
    world.assert_only_b(own_messages.content.decode(), b.facts.refund_window)
    world.assert_only_b(answer["answer"], b.facts.refund_window)
    documents_cited, chunks_cited = citation_ids(answer["citations"])
    assert documents_cited and documents_cited <= b.document_ids
    assert chunks_cited <= b.chunk_ids


# --- 4. the OpenAI-compatible endpoint --------------------------------------------------------


def test_openai_endpoint_account_b_key_neither_lists_nor_answers_from_account_a(
    world, live
) -> None:
    a, b = world.a, world.b
    sdk = openai.OpenAI(base_url=f"{live.url}/v1", api_key=b.api_key, max_retries=0, timeout=60)
    question: list[ChatCompletionMessageParam] = [{"role": "user", "content": PAYOUT_QUESTION}]

    models = [model.id for model in sdk.models.list().data]
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.chat.completions.create(model=a.knowledge_base.slug, messages=question)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model=a.knowledge_base.slug, messages=question, stream=True)
    completion = sdk.chat.completions.create(model=b.knowledge_base.slug, messages=question)

    assert models == [b.knowledge_base.slug]
    world.assert_only_b(str(refused.value))
    content = completion.choices[0].message.content or ""
    world.assert_only_b(content, b.facts.payout)
    documents_cited, chunks_cited = citation_ids((completion.model_extra or {})["citations"])
    assert documents_cited and documents_cited <= b.document_ids
    assert chunks_cited <= b.chunk_ids
    assert not Conversation.objects.filter(
        account=a.account, messages__content=PAYOUT_QUESTION
    ).exists()


# --- 5. citations -----------------------------------------------------------------------------


def test_citations_account_b_cannot_follow_account_a_citation_links(world) -> None:
    a, b = world.a, world.b
    client = logged_in(b.member)
    a_links = [citation_url(citation) for citation in cited_by(a.chat_answer)]
    b_citations = cited_by(b.chat_answer)
    b_document = b.documents[0]
    a_chunk = next(chunk for chunk in a.chunks if a.facts.refund_window in chunk.text)
    b_chunk = next(chunk for chunk in b.chunks if b.facts.refund_window in chunk.text)

    followed = [client.get(link) for link in a_links]
    own = client.get(
        f"{reverse('kb:document_detail', args=[b_chunk.document_id])}?chunk={b_chunk.pk}"
    )
    # A's chunk id in the link of B's own document: nothing of A's is highlighted or shown.
    smuggled = client.get(
        f"{reverse('kb:document_detail', args=[b_document.pk])}?chunk={a_chunk.pk}"
    )

    assert a_links and [r.status_code for r in followed] == [404] * len(a_links)
    for response in followed:
        world.assert_only_b(response.content.decode())
    assert b_citations
    assert {c.chunk_id for c in b_citations} <= b.chunk_ids
    assert {c.document_id for c in b_citations} <= b.document_ids
    assert own.status_code == 200
    world.assert_only_b(own.content.decode(), b.facts.refund_window)
    assert smuggled.status_code == 200
    world.assert_only_b(smuggled.content.decode(), b.facts.refund_window)
    assert "<mark" in own.content.decode() and "<mark" not in smuggled.content.decode()
    assert "This passage has changed since it was cited" in smuggled.content.decode()


# --- 6. the document view ---------------------------------------------------------------------


def test_document_view_account_b_gets_404_for_account_a_documents_and_files(world) -> None:
    a, b = world.a, world.b
    client = logged_in(b.member)

    pages = [client.get(reverse("kb:document_detail", args=[d.pk])) for d in a.documents]
    files = [client.get(f"{django_settings.MEDIA_URL}{d.file.name}") for d in a.documents]
    own = [client.get(reverse("kb:document_detail", args=[d.pk])) for d in b.documents]

    assert [r.status_code for r in pages + files] == [404] * (2 * len(a.documents))
    for response in pages + files:
        world.assert_only_b(response.content.decode())
    assert [r.status_code for r in own] == [200] * len(b.documents)
    world.assert_only_b("".join(r.content.decode() for r in own), *astuple(b.facts))


# --- 7. search --------------------------------------------------------------------------------


def test_search_account_b_key_never_returns_account_a_chunks_even_for_a_secret_phrase(
    world,
) -> None:
    a, b = world.a, world.b
    client = b.api()
    secret = a.facts.passphrase

    hybrid = client.get("/api/v1/search", {"q": secret}).json()
    keyword = client.get("/api/v1/search", {"q": secret, "mode": "keyword"}).json()
    vector = client.get("/api/v1/search", {"q": secret, "mode": "vector", "k": 50}).json()
    in_a = [
        client.get("/api/v1/search", {"q": secret, "knowledge_base": reference})
        for reference in (a.knowledge_base.slug, str(a.knowledge_base.pk))
    ]
    own = client.get("/api/v1/search", {"q": b.facts.passphrase}).json()
    # Where the phrase lives, the same query finds it: the query is not the reason B sees nothing.
    at_home = a.api().get("/api/v1/search", {"q": secret}).json()

    assert at_home["hits"][0]["chunk"]["id"] in a.chunk_ids
    assert secret in at_home["hits"][0]["chunk"]["text"]
    for result in (hybrid, keyword, vector):
        assert {hit["chunk"]["id"] for hit in result["hits"]} <= b.chunk_ids
        world.assert_only_b(str(result["hits"]))
    assert keyword["hits"] == []
    assert {hit["chunk"]["id"] for hit in vector["hits"]} == b.chunk_ids
    assert [r.status_code for r in in_a] == [404, 404]
    assert own["hits"][0]["chunk"]["id"] in b.chunk_ids
    world.assert_only_b(own["hits"][0]["chunk"]["text"], b.facts.passphrase)


# --- 8. the answer caches ---------------------------------------------------------------------


def _ask(client: APIClient, question: str) -> dict:
    response = client.post("/api/v1/answers", {"question": question}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _ledger_cache_hits(answer: dict) -> list[bool]:
    request_id = Message.objects.get(pk=answer["message_id"]).request_id
    return list(
        LlmCall.objects.filter(request_id=request_id, feature="answer").values_list(
            "cache_hit", flat=True
        )
    )


def test_answer_caches_account_b_never_gets_account_a_cached_answer(world) -> None:
    a, b = world.a, world.b
    a_client, b_client = a.api(), b.api()
    # Given A's answer to the question in both caches (a repeat and a paraphrase hit them)
    first = _ask(a_client, GROWTH_QUESTION)
    repeat = _ask(a_client, GROWTH_QUESTION)
    paraphrase = _ask(a_client, GROWTH_PARAPHRASE)
    assert (first["cached"], repeat["cached"], paraphrase["cached"]) == ("", "exact", "semantic")

    # When B asks the same question (exact cache), then its paraphrase (semantic cache)
    same = _ask(b_client, GROWTH_QUESTION)
    # (B's own answer would now serve the paraphrase: A's must be the only one to find.)
    SemanticCacheEntry.objects.filter(account=b.account).delete()
    reworded = _ask(b_client, GROWTH_PARAPHRASE)

    # Then both are answered afresh from B's documents
    for answer in (same, reworded):
        assert answer["cached"] == ""
        assert _ledger_cache_hits(answer) == [False]
        world.assert_only_b(answer["answer"], b.facts.growth_price)
        documents_cited, chunks_cited = citation_ids(answer["citations"])
        assert documents_cited and documents_cited <= b.document_ids
        assert chunks_cited <= b.chunk_ids
    assert _ledger_cache_hits(repeat) == _ledger_cache_hits(paraphrase) == [True]


# --- 9. the admin -----------------------------------------------------------------------------


def test_admin_account_b_admin_cannot_list_or_open_account_a_objects(world) -> None:
    a, b = world.a, world.b
    client = logged_in(world.b_admin)
    a_key, b_key = ApiKey.objects.get(account=a.account), ApiKey.objects.get(account=b.account)
    a_calls = list(LlmCall.objects.filter(account=a.account))
    b_calls = list(LlmCall.objects.filter(account=b.account))

    def change_url(obj) -> str:
        meta = obj._meta
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])

    lists = {
        "documents": client.get(reverse("admin:kb_document_changelist")),
        "chunks": client.get(reverse("admin:kb_chunk_changelist")),
        "chunks matching B's secret": client.get(
            reverse("admin:kb_chunk_changelist"), {"q": b.facts.passphrase}
        ),
        "knowledge bases": client.get(reverse("admin:kb_knowledgebase_changelist")),
        "API keys": client.get(reverse("admin:kb_apikey_changelist")),
        "usage ledger": client.get(reverse("admin:llm_llmcall_changelist")),
    }
    # (The search box shows the query back, so this page is checked for links only.)
    searched = client.get(reverse("admin:kb_chunk_changelist"), {"q": a.facts.passphrase})
    a_objects = [*a.documents, *a.chunks, a.knowledge_base, a_key, *a_calls]
    opened = {change_url(obj): client.get(change_url(obj)) for obj in a_objects}
    hit_testing = client.get(
        reverse("admin:kb_knowledgebase_hit_testing", args=[a.knowledge_base.pk]),
        {"query": a.facts.passphrase},
    )
    progress = client.get(reverse("admin:kb_document_progress", args=[a.documents[0].pk]))
    # Conversations and messages have no admin pages at all (nor may they get unscoped ones).
    chat_pages = [
        client.get(f"/admin/chat/conversation/{a.chat_answer.conversation_id}/change/"),
        client.get(f"/admin/chat/message/{a.chat_answer.pk}/change/"),
        client.get("/admin/chat/conversation/"),
        client.get("/admin/chat/message/"),
    ]

    assert world.b_admin.is_staff and not world.b_admin.is_superuser
    assert all(r.status_code == 200 for r in lists.values())
    everything_listed = "".join(r.content.decode() for r in lists.values())
    world.assert_only_b(everything_listed)
    for obj in a_objects:
        assert change_url(obj) not in everything_listed, f"{obj!r} is listed"
        assert change_url(obj) not in searched.content.decode(), f"{obj!r} is found"
    for obj in [*b.documents, *b.chunks, b.knowledge_base, b_key, *b_calls]:
        assert change_url(obj) in everything_listed, f"B's own {obj!r} is not listed"
    assert f"cairn_{a_key.prefix}_" not in everything_listed
    assert f"cairn_{b_key.prefix}_" in everything_listed
    # Django's admin answers an object it cannot see with a redirect to its index.
    assert {r.status_code for r in opened.values()} == {302}
    assert {r["Location"] for r in opened.values()} == {reverse("admin:index")}
    assert hit_testing.status_code == progress.status_code == 404
    assert [r.status_code for r in chat_pages] == [404] * 4
    for response in [*opened.values(), hit_testing, progress, *chat_pages]:
        world.assert_only_b(response.content.decode())


# --- 10. tickets and queues -------------------------------------------------------------------

TICKET_QUESTION = "When does the money arrive after I ask for a refund?"


@dataclass(frozen=True)
class Desk:
    """One account's escalation: a queue (the same slug in both accounts), a ticket its
    member opened from a conversation (triaged into the queue, with a note), and one its
    API key opened. Each carries the account's facts: the answer, the note, the question."""

    queue: Queue
    rule: RoutingRule
    settings: TicketSettings
    chat_ticket: Ticket
    api_ticket: Ticket


def _desk(tenant: Tenant) -> Desk:
    queue = Queue.objects.create(account=tenant.account, name="Support", slug="support")
    queue.members.add(tenant.member.pk)
    rule = RoutingRule.objects.create(account=tenant.account, queue=queue, position=1)
    ticket_settings = TicketSettings.objects.create(account=tenant.account, default_queue=queue)
    _, pending = conversation_start(
        user_id=tenant.member.pk, knowledge_base=tenant.knowledge_base, text=TICKET_QUESTION
    )
    answer = _answered(pending)
    chat_ticket = ticket_open_from_conversation(
        conversation=answer.conversation, user=tenant.member
    )
    ticket_triage(ticket_id=chat_ticket.pk)
    ticket_note_add(
        ticket=chat_ticket, body=f"They gave the passphrase {tenant.facts.passphrase}.",
        by=tenant.member,
    )  # fmt: skip
    api_ticket = ticket_open(
        account=tenant.account, origin=Ticket.Origin.API,
        question=f"Please confirm by writing to {tenant.facts.mailbox}.",
        api_key=ApiKey.objects.get(account=tenant.account),
    )  # fmt: skip
    return Desk(
        queue=queue, rule=rule, settings=ticket_settings,
        chat_ticket=Ticket.objects.get(pk=chat_ticket.pk), api_ticket=api_ticket,
    )  # fmt: skip


@pytest.fixture(scope="module")
def desks(world, django_db_blocker) -> tuple[Desk, Desk]:
    """(A's desk, B's desk), committed; they go with the accounts when the module ends."""
    with django_db_blocker.unblock():
        return _desk(world.a), _desk(world.b)


def test_tickets_api_account_b_key_gets_404_for_account_a_tickets_and_lists_only_its_own(
    world, desks
) -> None:
    a, b = world.a, world.b
    a_desk, b_desk = desks
    client = b.api()
    a_ticket = a_desk.chat_ticket.pk

    refused = {
        "A's ticket": client.get(f"/api/v1/tickets/{a_ticket}"),
        "A's API ticket": client.get(f"/api/v1/tickets/{a_desk.api_ticket.pk}"),
        "reply to A's ticket": client.post(
            f"/api/v1/tickets/{a_ticket}/reply", {"body": "Hello from B"}, format="json"
        ),
        "solve A's ticket": client.post(
            f"/api/v1/tickets/{a_ticket}/status", {"status": "solved"}, format="json"
        ),
        "open on A's conversation": client.post(
            "/api/v1/tickets", {"conversation_id": a.api_answer.conversation_id}, format="json"
        ),
    }
    listed = client.get("/api/v1/tickets").json()["results"]
    by_a_queue = client.get("/api/v1/tickets", {"queue": str(a_desk.queue.pk)}).json()
    by_slug = client.get("/api/v1/tickets", {"queue": "support"}).json()["results"]
    own = client.get(f"/api/v1/tickets/{b_desk.chat_ticket.pk}")
    opened = client.post(
        "/api/v1/tickets", {"conversation_id": b.api_answer.conversation_id}, format="json"
    )

    assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 404)
    for response in refused.values():
        world.assert_only_b(response.content.decode())
    assert {t["id"] for t in listed} == {b_desk.chat_ticket.pk, b_desk.api_ticket.pk}
    world.assert_only_b(str(listed), b.facts.mailbox)
    assert by_a_queue["count"] == 0
    assert [t["id"] for t in by_slug] == [b_desk.chat_ticket.pk]
    assert own.status_code == 200
    world.assert_only_b(own.content.decode(), b.facts.payout, b.facts.passphrase)
    assert opened.status_code == 201
    world.assert_only_b(opened.content.decode(), b.facts.refund_window)
    assert opened.json()["account"] == b.account.slug
    # Nothing reached A's ticket or conversations.
    assert Ticket.objects.get(pk=a_ticket).status == Ticket.Status.OPEN
    assert not TicketEvent.objects.filter(ticket_id=a_ticket, kind="reply").exists()
    assert not Ticket.objects.filter(conversation_id=a.api_answer.conversation_id).exists()


def test_tickets_selectors_account_b_member_sees_only_its_own_tickets_and_queues(
    world, desks
) -> None:
    a_desk, b_desk = desks
    member = world.b.member

    visible = list(tickets_visible(user=member))
    listed = list(tickets_list(user=member, queue="support"))
    queues = list(queues_visible(user=member))
    own = ticket_get(user=member, ticket_id=b_desk.chat_ticket.pk)

    assert {t.pk for t in visible} == {b_desk.chat_ticket.pk, b_desk.api_ticket.pk}
    assert [t.pk for t in listed] == [b_desk.chat_ticket.pk]
    assert queues == [b_desk.queue]
    assert list(tickets_list(user=member, queue=a_desk.queue)) == []
    for ticket_id in (a_desk.chat_ticket.pk, a_desk.api_ticket.pk):
        with pytest.raises(Http404):
            ticket_get(user=member, ticket_id=ticket_id)
    shown = " ".join(
        [own.question, own.answer, str(own.sources)] + [e.body for e in own.events.all()]
    )
    world.assert_only_b(shown, world.b.facts.payout, world.b.facts.passphrase)
    # Triage routed each account's ticket to its own queue (the slugs are the same).
    assert b_desk.chat_ticket.queue_id == b_desk.queue.pk
    assert a_desk.chat_ticket.queue_id == a_desk.queue.pk


def test_tickets_admin_account_b_admin_cannot_list_or_open_account_a_tickets_or_queues(
    world, desks
) -> None:
    a_desk, b_desk = desks
    client = logged_in(world.b_admin)

    def change_url(obj) -> str:
        meta = obj._meta
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])

    lists = [
        client.get(reverse(f"admin:tickets_{name}_changelist"))
        for name in ("ticket", "queue", "routingrule", "ticketsettings")
    ]
    a_objects = [a_desk.chat_ticket, a_desk.api_ticket, a_desk.queue, a_desk.rule, a_desk.settings]
    b_objects = [b_desk.chat_ticket, b_desk.api_ticket, b_desk.queue, b_desk.rule, b_desk.settings]
    opened = [client.get(change_url(obj)) for obj in a_objects]
    own = client.get(change_url(b_desk.chat_ticket))
    # The queue's members and the default queue offered are B's only.
    queue_form = client.get(reverse("admin:tickets_queue_add")).content.decode()
    settings_form = client.get(change_url(b_desk.settings)).content.decode()

    assert [r.status_code for r in lists] == [200] * 4
    everything_listed = "".join(r.content.decode() for r in lists)
    world.assert_only_b(everything_listed)
    for obj in a_objects:
        assert change_url(obj) not in everything_listed, f"{obj!r} is listed"
    for obj in b_objects:
        assert change_url(obj) in everything_listed, f"B's own {obj!r} is not listed"
    assert {r.status_code for r in opened} == {302}
    assert {r["Location"] for r in opened} == {reverse("admin:index")}
    assert own.status_code == 200
    world.assert_only_b(own.content.decode(), world.b.facts.payout, world.b.facts.passphrase)
    assert f'value="{world.a.member.pk}"' not in queue_form
    assert f'value="{world.b.member.pk}"' in queue_form
    assert f'value="{a_desk.queue.pk}"' not in settings_form
    assert f'value="{b_desk.queue.pk}"' in settings_form


# --- feature flags --------------------------------------------------------------------------


def test_flags_account_a_flags_never_reach_account_b_nor_its_admin(world) -> None:
    a, b = world.a, world.b
    a_flag = Flag.objects.create(
        account=a.account, key="prompt_version", variant="v1", rollout_percent=100,
        description=f"Alder rollout {a.facts.passphrase}",
    )  # fmt: skip
    b_key = ApiKey.objects.get(account=b.account)
    client = logged_in(world.b_admin)
    change = reverse("admin:flags_flag_change", args=[a_flag.pk])

    listed = client.get(reverse("admin:flags_flag_changelist"))
    opened = client.get(change)

    for subject in (subject_for(user_id=b.member.pk), subject_for(api_key_id=b_key.pk)):
        assert flags_for(account_id=b.account.pk, subject=subject) == {}
    assert flags_for(account_id=a.account.pk, subject=subject_for(user_id=a.member.pk)) == {
        "prompt_version": "v1"
    }
    assert listed.status_code == 200 and change not in listed.content.decode()
    assert opened.status_code == 302 and opened["Location"] == reverse("admin:index")
    world.assert_only_b(listed.content.decode() + opened.content.decode())
