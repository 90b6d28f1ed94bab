"""The API examples in README.md's tour and in docs/api.md, run verbatim against a live server.

Each example follows a ``<!-- tested: NAME -->`` marker; shell ones run in bash,
Python ones in the project's interpreter, all from the repository root with
CAIRN_URL, CAIRN_API_KEY and CAIRN_KB set, as the pages say.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.services.demo import demo_load
from ingest.services.pipeline import document_ingest
from kb.models import Document
from tests.support.api import api_client
from tests.support.live_server import running_asgi_server

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = re.compile(r"<!-- tested: ([\w-]+) -->\n```(sh|python)\n(.*?)```", re.DOTALL)
PAGES = ("README.md", "docs/api.md")


def page_examples(page: str) -> dict[str, tuple[str, str]]:
    text = (REPO / page).read_text(encoding="utf-8")
    return {name: (language, code) for name, language, code in EXAMPLE.findall(text)}


def readme_examples() -> dict[str, tuple[str, str]]:
    """Every tested example of the pages, by name (a name is used on one page only)."""
    by_page = {page: page_examples(page) for page in PAGES}
    assert set(by_page["README.md"]) >= {"tour"}
    assert set(by_page["docs/api.md"]) >= {
        "answer", "answer-stream", "search", "upload", "openai-python"
    }  # fmt: skip
    examples: dict[str, tuple[str, str]] = {}
    for found in by_page.values():
        assert not set(found) & set(examples), "an example name is used twice"
        examples.update(found)
    return examples


def run(language: str, code: str, env: dict[str, str]) -> str:
    argv = (
        ["bash", "-euo", "pipefail", "-c", code]
        if language == "sh"
        else [sys.executable, "-c", code]
    )
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603
    assert done.returncode == 0, f"{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def test_the_readme_api_examples_work_as_written() -> None:
    examples = readme_examples()
    demo = demo_load().knowledge_base
    for document in Document.objects.filter(knowledge_base=demo):
        document_ingest(document_id=document.pk)
    _, _, key = api_client(demo.account, ["read", "answer", "ingest"])

    with running_asgi_server() as live:
        env = {**os.environ, "CAIRN_URL": live.url, "CAIRN_API_KEY": key, "CAIRN_KB": demo.slug}
        outputs = {name: run(language, code, env) for name, (language, code) in examples.items()}

    tour = json.loads(outputs["tour"])
    assert tour["grounded"] and "$59" in tour["answer"] and tour["citations"]
    answer = json.loads(outputs["answer"])
    assert answer["grounded"] and "$59" in answer["answer"] and answer["citations"]
    assert "event: token" in outputs["answer-stream"] and "event: done" in outputs["answer-stream"]
    assert json.loads(outputs["search"])["hits"]
    assert json.loads(outputs["upload"])["result"] in ("created", "updated", "duplicate")
    assert demo.slug in outputs["openai-python"] and "$59" in outputs["openai-python"]
    ticket = json.loads(outputs["ticket"])
    assert ticket["origin"] == "api" and ticket["status"] == "open" and ticket["id"]
    assert "Sources:" in outputs["openai-python"]
