"""Streaming answers over HTTP, read by real clients: an SSE client library for
/api/v1/answers, and the official openai SDK for the OpenAI-compatible endpoint."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest
import sseclient

from chat.models import Message
from tests.factories import make_account, make_knowledge_base
from tests.support.api import api_client
from tests.support.live_server import running_asgi_server

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How much does the Growth plan cost per month?"


@pytest.fixture
def live():
    with running_asgi_server() as server:
        yield server


def sse_events(response: httpx2.Response) -> list[tuple[str, dict]]:
    client = sseclient.SSEClient(response.iter_bytes())
    return [(event.event, json.loads(event.data)) for event in client.events()]


def test_answers_stream_as_server_sent_events(help_kb, live) -> None:
    _, _, key = api_client(help_kb.account, ["answer"])

    with httpx2.stream(
        "POST", f"{live.url}/api/v1/answers", json={"question": QUESTION, "stream": True},
        headers={"Authorization": f"Bearer {key}"}, timeout=60,
    ) as response:  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)

    names = [name for name, _ in events]
    assert names.count("token") > 3
    assert names[-1] == "done" and names[-2] == "usage" and "citation" in names
    assert names.index("citation") > max(i for i, n in enumerate(names) if n == "token")
    done = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "token") == done["answer"]
    assert done["grounded"] and done["citations"][0]["n"] == 1
    assert [data for name, data in events if name == "citation"] == done["citations"]
    assert Message.objects.get(pk=done["message_id"]).status == "done"


def test_accept_event_stream_asks_for_a_stream_too(help_kb, live) -> None:
    _, _, key = api_client(help_kb.account, ["answer"])

    with httpx2.stream(
        "POST", f"{live.url}/api/v1/answers", json={"question": QUESTION},
        headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}, timeout=60,
    ) as response:  # fmt: skip
        events = sse_events(response)

    assert events[-1][0] == "done"


@pytest.fixture
def sdk(help_kb, live) -> openai.OpenAI:
    _, _, key = api_client(help_kb.account, ["answer"])
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0, timeout=60)


def test_the_openai_sdk_lists_the_accounts_knowledge_bases_as_models(help_kb, sdk) -> None:
    make_knowledge_base(make_account("Other"), "Other help")

    models = sdk.models.list()

    assert [m.id for m in models.data] == [help_kb.slug]


def test_the_openai_sdk_gets_a_cited_answer(help_kb, sdk) -> None:
    completion = sdk.chat.completions.create(
        model=help_kb.slug,
        messages=[
            {"role": "system", "content": "You are a pirate."},  # ignored: Cairn's prompt rules
            {"role": "user", "content": QUESTION},
        ],
    )

    content = completion.choices[0].message.content or ""
    assert "$59" in content and "\n\nSources:\n[1] " in content and "/documents/" in content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    citations = (completion.model_extra or {})["citations"]
    assert citations[0]["n"] == 1 and "$59" in citations[0]["snippet"]


def test_the_openai_sdk_streams_an_answer_with_usage(help_kb, sdk) -> None:
    stream = sdk.chat.completions.create(
        model=help_kb.slug, messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "$59" in text and "Sources:" in text
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finishing) == 1 and (finishing[0].model_extra or {})["citations"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_the_openai_sdk_sends_history_for_follow_ups(help_kb, sdk) -> None:
    completion = sdk.chat.completions.create(
        model=help_kb.slug,
        messages=[
            {"role": "user", "content": "How much is the Growth plan?"},
            {"role": "assistant", "content": "It costs $59 per month [1]."},
            {"role": "user", "content": "And per year?"},
        ],
    )

    assert "$590" in (completion.choices[0].message.content or "")


def test_another_accounts_knowledge_base_is_not_a_model_for_this_key(help_kb, live) -> None:
    other = make_knowledge_base(make_account("Other"), "Other help")
    _, _, key = api_client(help_kb.account, ["answer"])
    sdk = openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)

    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model=other.slug, messages=[{"role": "user", "content": "Hi?"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"{live.url}/v1", api_key="cairn_bad_key", max_retries=0
        ).models.list()
