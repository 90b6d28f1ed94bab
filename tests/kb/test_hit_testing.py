"""The admin's hit-testing page: ranked chunks with each channel's rank and score."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ingest.services.pipeline import document_ingest
from tests.factories import make_account, make_knowledge_base, make_user, upload

pytestmark = pytest.mark.django_db


def test_hit_testing_shows_ranked_chunks_with_channel_scores(client, kb) -> None:
    document = upload(kb, "refunds.md", b"# Refunds\n\nRefunds are paid within 14 days.\n").document
    document_ingest(document_id=document.pk)
    client.force_login(make_user(account=kb.account, role="staff"))
    url = reverse("admin:kb_knowledgebase_hit_testing", args=[kb.pk])

    page = client.get(url, {"query": "when are refunds paid", "mode": "hybrid", "k": 5})

    html = page.content.decode()
    assert page.status_code == 200
    assert "Refunds are paid within 14 days." in html
    assert reverse("admin:kb_document_change", args=[document.pk]) in html
    assert "1 / 0." in html  # vector rank 1 with its similarity, keyword rank 1 with BM25


def test_another_accounts_knowledge_base_cannot_be_hit_tested(client, kb) -> None:
    other = make_knowledge_base(make_account("Other"))
    client.force_login(make_user(account=kb.account, role="admin"))

    response = client.get(reverse("admin:kb_knowledgebase_hit_testing", args=[other.pk]))

    assert response.status_code == 404
