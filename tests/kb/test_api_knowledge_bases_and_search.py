"""GET/POST /api/v1/knowledge-bases and GET /api/v1/search: scoped to the caller's
account, with scopes, sessions, pagination and the one error shape."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from ingest.services.pipeline import document_ingest
from kb.models import Document, KnowledgeBase, Membership
from tests.factories import make_account, make_knowledge_base, make_user, upload
from tests.support.api import api_client, error_of

pytestmark = pytest.mark.django_db

KNOWLEDGE_BASES = "/api/v1/knowledge-bases"
SEARCH = "/api/v1/search"

REFUNDS = b"""# Refunds

Refunds for annual plans are prorated by the unused months and paid within 14 days.

# Exports

Invoices can be exported as CSV or PDF from the Reports page.
"""
FILLER = "\n\n".join(
    f"# Topic {i}\n\nNotes on warehouse shelf {i} and the courier schedule." for i in range(8)
).encode()  # BM25 needs a corpus where "refund" is rare
SECRET = b"""# Nightingale

Project Nightingale refunds are confidential and handled by the finance team.
"""


def ingested(knowledge_base: KnowledgeBase, name: str, content: bytes) -> Document:
    document = upload(knowledge_base, name, content).document
    document_ingest(document_id=document.pk)
    return document


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


# --- Knowledge bases: list ---------------------------------------------------------


def test_a_key_lists_its_accounts_knowledge_bases_with_document_counts_and_no_others(kb) -> None:
    other = make_knowledge_base(make_account("Other"), "Other help")
    upload(kb, "refunds.md", REFUNDS)
    upload(other, "secret.md", SECRET)
    client, _, _ = api_client(kb.account, ["read"])

    response = client.get(KNOWLEDGE_BASES)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    [item] = body["results"]
    assert item["id"] == kb.pk and item["slug"] == kb.slug and item["name"] == "Ledgerly help"
    assert item["account"] == kb.account.slug
    assert item["documents_count"] == 1
    assert item["created_at"].endswith("Z") and "T" in item["created_at"]
    assert set(item) >= {"description", "embedding_model", "updated_at"}


def test_without_credentials_the_api_answers_401_with_www_authenticate(kb) -> None:
    response = APIClient().get(KNOWLEDGE_BASES)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert error_of(response)["code"] == "not_authenticated"


def test_a_wrong_key_is_401(kb) -> None:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY="cairn_00000000_not-a-key")

    response = client.get(KNOWLEDGE_BASES)

    assert response.status_code == 401
    assert "not valid" in error_of(response)["message"]


def test_knowledge_bases_are_paginated_in_constant_queries(kb) -> None:
    client, _, _ = api_client(kb.account, ["read"])
    client.get(KNOWLEDGE_BASES)  # the key's last_used_at is written once
    with CaptureQueriesContext(connection) as one:
        client.get(KNOWLEDGE_BASES)
    for n in range(4):
        make_knowledge_base(kb.account, f"Help {n}")

    with CaptureQueriesContext(connection) as five:
        first = client.get(KNOWLEDGE_BASES, {"limit": 2})
    second = client.get(KNOWLEDGE_BASES, {"limit": 2, "offset": 4})

    assert len(five) == len(one)
    assert first.json()["count"] == 5 and len(first.json()["results"]) == 2
    assert first.json()["next"] and first.json()["previous"] is None
    assert len(second.json()["results"]) == 1 and second.json()["next"] is None


def test_an_absurd_offset_is_an_empty_page_not_an_error(kb) -> None:
    client, _, _ = api_client(kb.account, ["read"])

    response = client.get(KNOWLEDGE_BASES, {"offset": 10**30})

    assert response.status_code == 200 and response.json()["results"] == []


def test_a_session_member_lists_the_knowledge_bases_of_their_accounts(kb) -> None:
    make_knowledge_base(make_account("Other"), "Other help")
    staff = make_user(staff=False, account=kb.account, role="staff")

    response = session_client(staff).get(KNOWLEDGE_BASES)

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [kb.pk]


def test_a_method_the_path_does_not_offer_is_405_with_allow(kb) -> None:
    client, _, _ = api_client(kb.account)

    response = client.put(KNOWLEDGE_BASES, {}, format="json")

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= {m.strip() for m in response["Allow"].split(",")}


# --- Knowledge bases: create --------------------------------------------------------


def test_an_ingest_key_creates_a_knowledge_base_in_its_account(kb) -> None:
    client, _, _ = api_client(kb.account, ["read", "ingest"])

    response = client.post(
        KNOWLEDGE_BASES, {"name": "Billing FAQ", "description": "For finance."}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    created = KnowledgeBase.objects.get(pk=body["id"])
    assert created.account == kb.account
    assert (body["slug"], body["name"], body["description"]) == (
        "billing-faq",
        "Billing FAQ",
        "For finance.",
    )
    assert body["documents_count"] == 0 and body["account"] == kb.account.slug


def test_a_taken_slug_is_400_saying_so(kb) -> None:
    client, _, _ = api_client(kb.account, ["ingest"])

    response = client.post(KNOWLEDGE_BASES, {"name": "Again", "slug": kb.slug}, format="json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert "slug" in error["message"] and "already has a knowledge base" in error["message"]
    assert KnowledgeBase.objects.filter(account=kb.account).count() == 1


def test_the_same_slug_is_fine_in_another_account(kb) -> None:
    client, _, _ = api_client(make_account("Other"), ["ingest"])

    response = client.post(KNOWLEDGE_BASES, {"name": "Mine", "slug": kb.slug}, format="json")

    assert response.status_code == 201


def test_a_name_is_required(kb) -> None:
    client, _, _ = api_client(kb.account, ["ingest"])

    response = client.post(KNOWLEDGE_BASES, {"slug": "x"}, format="json")

    assert response.status_code == 400
    assert error_of(response)["message"].startswith("name:")


def test_a_read_only_key_cannot_create_a_knowledge_base(kb) -> None:
    client, _, _ = api_client(kb.account, ["read"])

    response = client.post(KNOWLEDGE_BASES, {"name": "Nope"}, format="json")

    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"
    assert not KnowledgeBase.objects.filter(name="Nope").exists()


def test_a_key_cannot_create_in_another_account(kb) -> None:
    client, _, _ = api_client(make_account("Other"), ["ingest"])

    response = client.post(
        KNOWLEDGE_BASES, {"name": "Sneaky", "account": kb.account.slug}, format="json"
    )

    assert response.status_code == 404
    assert not KnowledgeBase.objects.filter(name="Sneaky").exists()


def test_a_session_admin_of_several_accounts_must_say_which(kb) -> None:
    second = make_account("Second")
    admin = make_user(staff=False, account=kb.account, role="admin")
    Membership.objects.create(user_id=admin.pk, account=second, role="admin")
    client = session_client(admin)

    unnamed = client.post(KNOWLEDGE_BASES, {"name": "Where?"}, format="json")
    named = client.post(KNOWLEDGE_BASES, {"name": "Here", "account": second.slug}, format="json")

    assert unnamed.status_code == 400 and "account" in error_of(unnamed)["message"]
    assert named.status_code == 201
    assert KnowledgeBase.objects.get(pk=named.json()["id"]).account == second


def test_session_staff_cannot_create_knowledge_bases(kb) -> None:
    staff = make_user(staff=False, account=kb.account, role="staff")

    response = session_client(staff).post(KNOWLEDGE_BASES, {"name": "Nope"}, format="json")

    assert response.status_code == 403
    error_of(response)


# --- Search -------------------------------------------------------------------------


def test_search_returns_hits_with_both_channels_scores(kb) -> None:
    document = ingested(kb, "refunds.md", REFUNDS)
    ingested(kb, "warehouse.md", FILLER)
    client, _, _ = api_client(kb.account, ["read"])

    response = client.get(SEARCH, {"q": "refund for annual plans", "knowledge_base": kb.slug})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["query"] == "refund for annual plans" and body["mode"] == "hybrid"
    assert body["nothing_relevant"] is False
    assert body["knowledge_bases"] == [{"id": kb.pk, "slug": kb.slug, "name": kb.name}]
    top = body["hits"][0]
    assert top["rank"] == 1
    assert "prorated" in top["chunk"]["text"]
    assert top["chunk"]["heading_path"] == "Refunds" and top["chunk"]["page"] is None
    assert top["document"] == {"id": document.pk, "title": "Refunds", "source": "refunds.md"}
    assert top["knowledge_base"]["id"] == kb.pk
    scores = top["scores"]
    assert scores["fused"] > 0
    assert scores["vector"]["rank"] >= 1 and 0 < scores["vector"]["similarity"] <= 1
    assert scores["keyword"]["rank"] == 1 and scores["keyword"]["bm25"] > 0


def test_keyword_search_has_no_vector_scores_and_k_limits_the_hits(kb) -> None:
    ingested(kb, "refunds.md", REFUNDS)
    client, _, _ = api_client(kb.account, ["read"])

    response = client.get(SEARCH, {"q": "invoices refunds", "mode": "keyword", "k": "1"})

    body = response.json()
    assert response.status_code == 200 and len(body["hits"]) == 1
    assert body["hits"][0]["scores"]["vector"] is None
    assert body["hits"][0]["scores"]["keyword"]["rank"] == 1


def test_search_by_knowledge_base_id_and_nothing_relevant_when_nothing_matches(kb) -> None:
    ingested(kb, "refunds.md", REFUNDS)
    client, _, _ = api_client(kb.account, ["read"])

    response = client.get(
        SEARCH, {"q": "zebra migration", "knowledge_base": kb.pk, "mode": "keyword"}
    )

    assert response.status_code == 200
    assert response.json()["hits"] == [] and response.json()["nothing_relevant"] is True


def test_search_never_returns_another_accounts_chunks(kb) -> None:
    other = make_knowledge_base(make_account("Other"), "Other help")
    ingested(kb, "secret.md", SECRET)
    ingested(other, "refunds.md", REFUNDS)
    client, _, _ = api_client(other.account, ["read"])

    everything = client.get(SEARCH, {"q": "Project Nightingale confidential refunds"})
    by_slug = client.get(SEARCH, {"q": "Nightingale", "knowledge_base": kb.slug})
    by_id = client.get(SEARCH, {"q": "Nightingale", "knowledge_base": kb.pk})

    assert everything.status_code == 200
    assert {hit["knowledge_base"]["id"] for hit in everything.json()["hits"]} == {other.pk}
    assert not any("Nightingale" in hit["chunk"]["text"] for hit in everything.json()["hits"])
    assert by_slug.status_code == by_id.status_code == 404
    assert error_of(by_id)["code"] == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "refunds", "k": 0}, "k"),
        ({"q": "refunds", "k": 51}, "k"),
        ({"q": "refunds", "k": "many"}, "k"),
        ({"q": "refunds", "mode": "psychic"}, "mode"),
    ],
)
def test_bad_search_parameters_are_400(kb, params, field) -> None:
    client, _, _ = api_client(kb.account, ["read"])

    response = client.get(SEARCH, params)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid" and error["message"].startswith(f"{field}:")


def test_search_needs_the_read_scope(kb) -> None:
    client, _, _ = api_client(kb.account, ["answer"])

    response = client.get(SEARCH, {"q": "refunds"})

    assert response.status_code == 403
    error_of(response)


def test_a_session_member_can_search_their_account(kb) -> None:
    ingested(kb, "refunds.md", REFUNDS)
    staff = make_user(staff=False, account=kb.account, role="staff")

    response = session_client(staff).get(SEARCH, {"q": "exported as CSV", "k": "3"})

    assert response.status_code == 200
    assert "CSV" in response.json()["hits"][0]["chunk"]["text"]


def test_a_member_of_several_accounts_must_name_the_knowledge_base(kb) -> None:
    other = make_knowledge_base(make_account("Other"), "Other help")
    user = make_user(staff=False, account=kb.account, role="staff")
    Membership.objects.create(user_id=user.pk, account=other.account, role="staff")
    client = session_client(user)

    unnamed = client.get(SEARCH, {"q": "refunds"})
    named = client.get(SEARCH, {"q": "refunds", "knowledge_base": other.slug})

    assert unnamed.status_code == 400 and "knowledge_base" in error_of(unnamed)["message"]
    assert named.status_code == 200


def test_the_schema_describes_these_operations_and_their_errors(kb) -> None:
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()

    search = schema["paths"]["/api/v1/search"]["get"]
    create = schema["paths"]["/api/v1/knowledge-bases"]["post"]
    assert {"200", "400", "401", "403", "404", "503"} <= set(search["responses"])
    assert {"201", "400", "401", "403", "404"} <= set(create["responses"])
    assert {p["name"] for p in search["parameters"]} == {"q", "knowledge_base", "k", "mode"}
    error = search["responses"]["400"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
