"""The web process warms up when the server starts, and /readyz waits for it.

The warm-up (config/warmup.py) loads what the first question would: the embedding model,
the injection detector, each knowledge base's keyword index. It starts on the ASGI
lifespan start-up, which `manage.py serve` sends and the tests' live servers do not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from django.conf import settings

from chat.models import LlmCall
from config import warmup
from config.warmup import WarmUpState, warm_up
from ingest.services.pipeline import document_ingest
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.registry import get_embedder, reset_embedders
from tests.factories import upload
from tests.support.processes import REPO_ROOT, free_port, manage_env
from tests.support.worker import _database_url

pytestmark = pytest.mark.django_db

FAQ = b"# FAQ\n\nRefunds take five days."


@pytest.fixture
def warm_up_state_restored():
    before = warmup.warm_up_state()
    yield
    warmup._set(before)


def test_readyz_is_503_while_the_warm_up_runs_and_200_after(client, warm_up_state_restored):
    warmup._set(WarmUpState("warming", "loading the embedding model and search indexes"))

    warming = client.get("/readyz")

    assert warming.status_code == 503
    assert warming.json()["checks"]["warm_up"]["ok"] is False

    warmup._set(WarmUpState("ready", "1 knowledge bases warmed", 2.0))
    assert client.get("/readyz").status_code == 200


def test_a_failed_warm_up_leaves_the_process_ready(client, warm_up_state_restored):
    warmup._set(WarmUpState("failed", "OSError; loads on first use"))

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["warm_up"]["detail"].startswith("failed")


def test_without_a_lifespan_start_up_there_is_no_warm_up(client) -> None:
    # What the test suite's live servers and every management command see.
    assert warmup.warm_up_state().state == "off"
    assert "warm_up" not in client.get("/readyz").json()["checks"]


def test_the_warm_up_loads_the_model_searches_each_knowledge_base_and_bills_nobody(kb) -> None:
    document_ingest(
        document_id=upload(kb, "faq.md", b"# FAQ\n\nRefunds take five days.").document.pk
    )
    reset_embedders()
    calls_before = LlmCall.objects.count()

    assert warm_up() == 1

    assert get_embedder(MINILM_MODEL_ID)._model is not None  # type: ignore[attr-defined]
    assert LlmCall.objects.count() == calls_before


@pytest.mark.django_db(transaction=True)
def test_a_served_process_reports_the_warm_up_in_readyz(kb, tmp_path) -> None:
    # Given a knowledge base with a document, and uvicorn started as `manage.py serve` does
    document_ingest(
        document_id=upload(kb, "faq.md", b"# FAQ\n\nRefunds take five days.").document.pk
    )
    port, log = free_port(), tmp_path / "web.log"
    env = manage_env(
        DATABASE_URL=_database_url(), SECRET_KEY=settings.SECRET_KEY, REDIS_URL=None,
        CELERY_BROKER_URL=f"filesystem://{tmp_path}", CAIRN_HTTPS="false",
    )  # fmt: skip
    argv = [
        sys.executable, "-m", "uvicorn", "config.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        # When it answers /readyz with 200
        body = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and body is None:
            assert process.poll() is None, log.read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    body = json.load(r)
            except OSError:
                time.sleep(0.2)
        assert body is not None, log.read_text()[-4000:]

        # Then the warm-up is over and searched the knowledge base
        warm = body["checks"]["warm_up"]
        assert warm["ok"] is True and warm["detail"] == "ready: 1 knowledge bases warmed", body
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
