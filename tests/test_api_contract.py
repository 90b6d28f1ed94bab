"""The API keeps its contract: schemathesis fuzzes every operation of /api/schema/ against
the live server and finds no 5xx and no response that breaks the schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.services.pipeline import document_ingest
from tests.factories import make_account, make_knowledge_base, upload
from tests.support.api import api_client
from tests.support.live_server import running_asgi_server

pytestmark = pytest.mark.django_db(transaction=True)

ST = Path(sys.executable).parent / "st"  # the schemathesis CLI of this environment
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(tmp_path) -> None:
    account = make_account("Contract")
    knowledge_base = make_knowledge_base(account, "Contract help")
    document = upload(
        knowledge_base, "plans.md", b"# Plans\n\nThe Growth plan costs $59 per month.\n"
    ).document
    document_ingest(document_id=document.pk)
    _, _, key = api_client(account, ["read", "answer", "ingest"])

    with running_asgi_server() as live:
        done = subprocess.run(  # noqa: S603
            [
                str(ST), "run", f"{live.url}/api/schema/",
                "--header", f"Authorization: Bearer {key}",
                "--checks", CHECKS,
                "--max-examples", "12",
                "--seed", "20261122",
                "--phases", "examples,coverage,fuzzing",
                "--request-timeout", "60",
                "--workers", "1",
                "--report", "junit", "--report-dir", str(tmp_path),
            ],  # fmt: skip
            capture_output=True, text=True, timeout=900, cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        )  # fmt: skip

    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]


def test_the_schema_and_its_docs_are_served_without_a_cdn(client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/answers", "/v1/chat/completions", "/api/v1/documents"} <= set(paths)
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()
