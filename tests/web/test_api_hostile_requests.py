"""Every error under /api/ and /v1/ is JSON in the documented shape, whatever is thrown at it.

A corpus of hostile bodies, headers, query strings and path values goes to every route the
URL resolver has under those prefixes (so a new route is covered without editing this file);
each answer is a success, or an error whose status and code docs/api.md's *Errors* paragraph
documents, in the one shape ``{"error": {"code", "message"}}``. Never a 5xx, never HTML.

Chunked bodies cross the ASGI server (the test client always sends a Content-Length), so
those tests talk to the real uvicorn on loopback.
"""

from __future__ import annotations

import http.client
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import make_account, make_knowledge_base
from tests.support.api import api_client, error_of
from tests.support.live_server import running_asgi_server

REPO = Path(__file__).resolve().parents[2]
API_PREFIXES = ("/api/", "/v1/")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MB = 1024 * 1024


def documented_errors() -> dict[int, set[str]]:
    """{status: codes} as docs/api.md's *Errors* paragraph lists them: ``400 (`invalid`, …)``."""
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    paragraph = text.split("**Errors**", 1)[1].split("\n\n", 1)[0]
    documented = {
        int(status): set(re.findall(r"`([a-z_]+)`", codes))
        for status, codes in re.findall(r"\b([45]\d\d)\s+\(((?:[^()]|\([^()]*\))*)\)", paragraph)
    }
    assert documented, "docs/api.md's Errors paragraph lists no status (code) pairs"
    return documented


# --- The routes ------------------------------------------------------------------------------


def api_routes() -> list[str]:
    """Every route of the URL resolver under /api/ and /v1/, as written (``<int:id>`` kept)."""

    def walk(patterns, prefix: str) -> Iterator[str]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    routes = sorted({route for route in walk(get_resolver().url_patterns, "/")})
    return [route for route in routes if route.startswith(API_PREFIXES)]


PATH_VALUES = ("1", "0", "99999999999999999999", "9" * 5000)
PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


def concrete_paths(route: str) -> list[str]:
    """The route with each path parameter filled by every hostile value (one path if none)."""
    if not PARAMETER.search(route):
        return [route]
    return [PARAMETER.sub(value, route) for value in PATH_VALUES]


# --- The corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    name: str
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""


def _fields(reference: object, **overrides: object) -> dict[str, object]:
    """A body with every endpoint's fields: ``reference`` wherever a knowledge base is named
    (so that no question is really answered), plausible values elsewhere, then ``overrides``."""
    body: dict[str, object] = {
        "question": "What does the Growth plan cost?",
        "messages": [{"role": "user", "content": "What does the Growth plan cost?"}],
        "knowledge_base": reference, "model": reference, "slug": reference,
        "name": "Hostile", "rating": "up", "comment": "", "q": "plans",
    }  # fmt: skip
    body.update(overrides)
    return body


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _multipart(parts: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = []
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode())
        chunks.append(content + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def corpus() -> list[Hostile]:
    many_fields, many_fields_type = _multipart([(f"f{n}", b"x", None) for n in range(1200)])
    many_files, many_files_type = _multipart([("file", b"x", f"{n}.md") for n in range(150)])
    unicode_kb, unicode_kb_type = _multipart(
        [("knowledge_base", "²".encode(), None), ("file", b"# Hi\n", "hi.md")]
    )
    return [
        Hostile("unicode digit", _json(_fields("²"))),
        Hostile("unicode digit ids", _json(_fields("²", conversation_id="²", limit="²"))),
        Hostile("arabic-indic digits", _json(_fields("٣", conversation_id="٣"))),
        Hostile("5000 ascii digits", _json(_fields("9" * 5000))),
        Hostile("out of bigint range", _json(_fields("9" * 25, conversation_id=10**25))),
        Hostile("NUL characters", _json(_fields("a\x00b", question="a\x00b", name="a\x00"))),
        Hostile("lone surrogates", b'{"question": "\\ud800", "knowledge_base": "\\udfff"}'),
        Hostile("nested 50000 deep", b"[" * 50_000 + b"]" * 50_000),
        Hostile("object nested 50000 deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
        Hostile("nested 900 deep in a field", b'{"question": ' + b"[" * 900 + b"]" * 900 + b"}"),
        Hostile("8 MB JSON", _json(_fields("²", question="x" * (8 * MB)))),
        Hostile("8 MB form", b"question=" + b"x" * (8 * MB), "application/x-www-form-urlencoded"),
        Hostile("truncated JSON", b'{"question": "How'),
        Hostile("not UTF-8", b'{"question": "\xff\xfe"}'),
        Hostile("JSON array", b"[]"),
        Hostile("JSON string", b'"question"'),
        Hostile("JSON null", b"null"),
        Hostile("NaN and Infinity", b'{"question": NaN, "knowledge_base": Infinity}'),
        Hostile("5000-digit number", b'{"conversation_id": 1' + b"0" * 5000 + b"}"),
        Hostile("wrong types", _json(_fields({"a": 1}, question=["a"], messages="a", stream=[]))),
        Hostile("plain text", b"question=hi", "text/plain"),
        Hostile("multipart without boundary", b"--x\r\n", "multipart/form-data"),
        Hostile(
            "broken multipart",
            b"--x\r\nContent-Disposition: form-data\r\n",
            "multipart/form-data; boundary=x",
        ),
        Hostile("1200 multipart fields", many_fields, many_fields_type),
        Hostile("150 files", many_files, many_files_type),
        Hostile("unicode digit in a form", unicode_kb, unicode_kb_type),
        Hostile("query of digits", query="knowledge_base=²&limit=²&offset=²&status=²&q=²"),
        Hostile(
            "huge query numbers",
            query=f"limit={'9' * 5000}&offset=-1&knowledge_base={'9' * 5000}&q=a",
        ),  # noqa: E501
        Hostile("NUL in the query", query="q=a%00b&knowledge_base=a%00b&status=%00"),
        Hostile("not UTF-8 query", query="q=%ff%fe&knowledge_base=%c3"),
        Hostile("Accept: text/html", _json(_fields("²")), headers={"Accept": "text/html"}),
        Hostile(
            "Accept: event stream", _json(_fields("²")), headers={"Accept": "text/event-stream"}
        ),  # noqa: E501
        Hostile(
            "hostile idempotency key", _json(_fields("²")), headers={"Idempotency-Key": "²" * 5000}
        ),  # noqa: E501
        Hostile("Authorization of digits", headers={"Authorization": "Bearer ²"}),
        Hostile(
            "Authorization of 10000 bytes", headers={"Authorization": "Bearer " + "k" * 10_000}
        ),  # noqa: E501
        Hostile("Authorization scheme alone", headers={"Authorization": "Bearer"}),
        Hostile("X-API-Key of digits", headers={"Authorization": "", "X-API-Key": "٣"}),
        Hostile("a Host not allowed", headers={"Host": "evil.example"}),
    ]


# --- The checks ------------------------------------------------------------------------------


def problem_with(response, documented: dict[int, set[str]]) -> str | None:
    """Why ``response`` breaks the contract, or None."""
    status = response.status_code
    if status < 400:
        return None
    if status >= 500 and status != 503:
        return f"status {status}: {response.content[:300]!r}"
    if status not in documented:
        return f"status {status} is not documented: {response.content[:300]!r}"
    content_type = response.get("Content-Type", "")
    raw = response.content
    if content_type.startswith("text/event-stream"):
        data = [line[5:] for line in raw.decode().splitlines() if line.startswith("data:")]
        raw = data[0].encode() if len(data) == 1 else b""
    elif not content_type.startswith("application/json"):
        return f"{status} as {content_type!r}: {raw[:300]!r}"
    try:
        body = json.loads(raw)
    except ValueError:
        return f"{status} is not JSON: {raw[:300]!r}"
    if not (
        isinstance(body, dict)
        and set(body) == {"error"}
        and isinstance(body["error"], dict)
        and isinstance(body["error"].get("code"), str)
        and isinstance(body["error"].get("message"), str)
    ):
        return f"{status} is not the error shape: {body!r:.300}"
    if body["error"]["code"] not in documented[status]:
        return f"{status} {body['error']['code']!r} is not a documented code for {status}"
    return None


@pytest.mark.django_db
def test_every_api_route_answers_hostile_requests_with_documented_json_errors(settings) -> None:
    settings.CAIRN_API_KEY_RATE_LIMIT = settings.CAIRN_IP_RATE_LIMIT = ""  # reach the views
    # Given an account with a knowledge base, its key, and every /api and /v1 route
    account = make_account("Hostile")
    make_knowledge_base(account, "Hostile help")
    _, _, key = api_client(account)
    client = Client(raise_request_exception=False)
    documented = documented_errors()
    routes = api_routes()
    assert {
        "/api/v1/answers",
        "/api/v1/documents/<int:document_id>",
        "/v1/chat/completions",
    } <= set(routes)  # noqa: E501

    # When the corpus is thrown at each of them with each method
    hostiles = corpus()
    problems: list[tuple[str, str, str]] = []
    for route in routes:
        first, *others = concrete_paths(route)
        cases = [(first, hostile) for hostile in hostiles] + [
            (path, hostiles[0]) for path in others
        ]
        for path, hostile in cases:
            for method in METHODS:
                headers = {"Authorization": f"Bearer {key}", **hostile.headers}
                response = client.generic(
                        method, f"{path}?{hostile.query}" if hostile.query else path,
                        hostile.body, content_type=hostile.content_type, headers=headers,
                    )  # fmt: skip
                problem = problem_with(response, documented)
                if problem:
                    problems.append((f"{method} {path[:60]}", hostile.name, problem))

    # Then every answer is a success or a documented JSON error
    assert not problems, f"{len(problems)} bad answers:\n" + summary(problems)


def summary(problems: list[tuple[str, str, str]]) -> str:
    """One line per distinct problem, with the requests that met it."""
    met: dict[str, list[str]] = {}
    for request, hostile, problem in problems:
        met.setdefault(problem[:160], []).append(f"{request} [{hostile}]")
    return "\n".join(
        f"{problem}\n    {len(requests)}x: {'; '.join(requests[:4])}"
        for problem, requests in met.items()
    )


# --- Each defect the corpus found, on its own -----------------------------------------------


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "spelling", ["superscript two", "its id in arabic-indic digits", "5000 digits"]
)  # noqa: E501
def test_a_knowledge_base_named_by_digits_that_are_no_id_is_not_found(spelling: str) -> None:
    # Given a key of an account with one knowledge base
    account = make_account("Digits")
    knowledge_base = make_knowledge_base(account, "Digits help")
    client, _, _ = api_client(account)
    reference = {
        "superscript two": "²",  # str.isdigit() says yes, int() raises
        "its id in arabic-indic digits": str(knowledge_base.pk).translate(ARABIC_INDIC),
        "5000 digits": "9" * 5000,  # more digits than int() converts
    }[spelling]

    # When a question names the knowledge base so
    response = client.post(
        "/api/v1/answers", {"question": "Hi?", "knowledge_base": reference}, format="json"
    )

    # Then no such knowledge base, in the API's shape
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/answers", "/v1/chat/completions"])
@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_json_nested_50000_levels_deep_is_a_400_bad_request(kb, path: str, opening: bytes) -> None:
    client, _, _ = api_client(kb.account)
    closing = b"]" if opening == b"[" else b"}"

    response = client.generic(
        "POST", path, opening * 50_000 + b"1" * (opening != b"[") + closing * 50_000,  # type: ignore[arg-type]  # bytes: Django takes them
        content_type="application/json",
    )  # fmt: skip

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_request"
    assert "nested too deeply" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_json({"question": "x" * (8 * MB)}), "application/json"),
        (b"question=" + b"x" * (8 * MB), "application/x-www-form-urlencoded"),
    ],
    ids=["json", "form"],
)
def test_an_8_mb_body_is_413_payload_too_large(kb, body: bytes, content_type: str) -> None:
    client, _, _ = api_client(kb.account)

    response = client.generic("POST", "/api/v1/answers", body, content_type=content_type)  # type: ignore[arg-type]  # bytes: Django takes them

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large"
    assert "2.5 MB" in error["message"]


@pytest.mark.django_db
def test_more_multipart_fields_than_django_reads_is_a_400_bad_request(kb) -> None:
    client, _, _ = api_client(kb.account)
    body, content_type = _multipart([(f"f{n}", b"x", None) for n in range(1200)])

    response = client.generic("POST", "/api/v1/documents", body, content_type=content_type)  # type: ignore[arg-type]  # bytes: Django takes them

    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_docs_views_answer_errors_in_json_too(client, path: str) -> None:
    refused = client.post(path, {}, content_type="application/json")
    options = client.options(path)

    for response in (refused, options):
        assert response.status_code in (200, 405), response.content[:200]
        if response.status_code == 405:
            assert response["Content-Type"].startswith("application/json")
            assert error_of(response)["code"] == "method_not_allowed"


# --- Chunked bodies, through uvicorn ---------------------------------------------------------


def _chunked_post(url: str, path: str, body: bytes, content_type: str, key: str):
    """POST ``body`` with Transfer-Encoding: chunked and no Content-Length; (status, JSON)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        pieces = (body[start : start + MB] for start in range(0, len(body), MB))
        connection.request(
            "POST", path, body=pieces, encode_chunked=True,
            headers={"Content-Type": content_type, "Authorization": f"Bearer {key}"},
        )  # fmt: skip
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_chunked_upload_is_read_and_refused_over_the_limit_like_any_other() -> None:
    # Given a knowledge base, its key and the real ASGI server
    account = make_account("Chunked")
    knowledge_base = make_knowledge_base(account, "Chunked help")
    _, _, key = api_client(account)
    small, small_type = _multipart(
        [("knowledge_base", knowledge_base.slug.encode(), None),
         ("file", b"# Plans\n\nThe Growth plan costs $59.\n", "plans.md")]
    )  # fmt: skip
    oversize_mb = settings.CAIRN_MAX_UPLOAD_MB + 1
    large, large_type = _multipart(
        [("knowledge_base", knowledge_base.slug.encode(), None),
         ("file", b"# Big\n\n" + b"word " * (oversize_mb * MB // 5), "big.md")]
    )  # fmt: skip

    with running_asgi_server() as live:
        # When a small document and one over the limit are uploaded chunked
        accepted = _chunked_post(live.url, "/api/v1/documents", small, small_type, key)
        refused = _chunked_post(live.url, "/api/v1/documents", large, large_type, key)
        # and a question is sent chunked
        asked = _chunked_post(
            live.url, "/api/v1/answers", _json({"question": "Hi?", "knowledge_base": "²"}),
            "application/json", key,
        )  # fmt: skip

    # Then the small one is created, the large one is 413 like a declared oversize upload,
    # and the question's body is read (it names no such knowledge base)
    assert accepted[0] == 201, accepted
    assert accepted[1]["filename"] == "plans.md"
    assert refused[0] == 413, refused
    assert refused[1]["error"]["code"] == "payload_too_large"
    assert asked[0] == 404, asked
    assert asked[1]["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_a_bug_in_an_api_view_is_a_json_500_and_a_request_refused_before_any_view_a_json_400(
    kb, monkeypatch
) -> None:
    # Given a view with a bug, and a Host header the site does not answer to
    from kb.api.views import KnowledgeBaseListApi

    def bug(*args, **kwargs):
        raise ZeroDivisionError

    monkeypatch.setattr(KnowledgeBaseListApi, "get", bug)
    _, _, key = api_client(kb.account)
    client = Client(raise_request_exception=False, headers={"Authorization": f"Bearer {key}"})

    broken = client.get("/api/v1/knowledge-bases")
    refused = client.get("/v1/models", headers={"Host": "evil.example"})
    page = client.get("/", headers={"Host": "evil.example"})

    assert broken.status_code == 500
    assert error_of(broken)["code"] == "internal_error"
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "bad_request"
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
