"""Real-browser fixtures: headless Chromium driven by Playwright against the live ASGI server.

The browser is Debian's chromium (installed by .ci/run), never a downloaded one. Its
networking is limited to what the pages ask for: no background requests, no updates,
no sync, no QUIC.

Playwright's sync API runs an asyncio loop on the test's thread while it is started,
and Django refuses ORM calls from a thread with a running loop. So the database is
prepared before ``browser`` starts (list ORM fixtures before ``page`` in a test's
arguments), and a test that reads the database while the browser is open does it on
a thread of its own. The live server needs no such care: it runs on its own thread,
as in production.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from playwright.sync_api import Browser, Page, sync_playwright

from ingest.services.demo import demo_load
from ingest.services.pipeline import document_ingest
from kb.models import Document, KnowledgeBase
from tests.factories import make_user
from tests.support.fake_llm import FakeLLMServer, fake_llm_routes
from tests.support.live_server import LiveServer, running_asgi_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


@pytest.fixture
def demo_knowledge_base(transactional_db: None) -> KnowledgeBase:
    """The demo knowledge base ("Ledgerly support"), every document parsed and embedded."""
    knowledge_base = demo_load().knowledge_base
    for document_id in Document.objects.filter(knowledge_base=knowledge_base).values_list(
        "pk", flat=True
    ):
        document_ingest(document_id=document_id)
    cache.clear()  # no answer cached by an earlier test
    return knowledge_base


@pytest.fixture
def chat_user(demo_knowledge_base: KnowledgeBase) -> AbstractUser:
    """A staff member of the demo account (not a Django admin)."""
    return make_user(staff=False, account=demo_knowledge_base.account, role="staff")


@pytest.fixture
def asgi_server(transactional_db: None) -> Iterator[LiveServer]:
    with running_asgi_server() as server:
        yield server


@pytest.fixture
def fake_model(settings: Any, transactional_db: None) -> Iterator[FakeLLMServer]:
    """Every answer route goes to a scripted OpenAI-compatible server on loopback."""
    with fake_llm_routes(settings, retries=None) as server:
        yield server


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(asgi_server: LiveServer, browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the live server; relative URLs work."""
    context = browser.new_context(base_url=asgi_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``screenshot(page, "moment")``: a full-page PNG in test-artifacts/browser/, named
    after the test and numbered in the order taken; ``full_page=False`` keeps to the
    window, to show what the reader sees."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^\w-]+", "-", request.node.name).strip("-")
    for stale in ARTIFACTS.glob(f"{test_name}--*.png"):
        stale.unlink()
    taken = 0

    def take(page: Page, moment: str, *, full_page: bool = True) -> Path:
        nonlocal taken
        taken += 1
        path = ARTIFACTS / f"{test_name}--{taken:02d}-{moment}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
