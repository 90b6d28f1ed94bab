"""`manage.py ingest PATH... --kb SLUG`: bulk loads with a summary."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from kb.models import Document

pytestmark = pytest.mark.django_db


def test_a_folder_is_loaded_with_ok_duplicate_and_failed_in_the_summary(kb, tmp_path) -> None:
    folder = tmp_path / "handbook"
    (folder / "billing").mkdir(parents=True)
    (folder / "billing" / "refunds.md").write_text("# Refunds\n\nWithin 14 days.")
    (folder / "intro.txt").write_text("Welcome to Ledgerly.")
    (folder / "intro2.txt").write_text("Welcome to Ledgerly.")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (folder / "notes.exe").write_bytes(b"MZ")  # not a supported extension: not picked up
    (folder / ".hidden.md").write_text("# Secret")
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="1 document\\(s\\) failed"):
        call_command("ingest", str(folder), kb=kb.slug, inline=True, stdout=out, stderr=err)

    assert "ok: 2 (of which 0 new versions), skipped as duplicate: 1, failed: 1" in out.getvalue()
    assert "handbook/broken.pdf: the PDF is damaged" in err.getvalue()
    sources = set(Document.objects.values_list("source", flat=True))
    assert sources == {"handbook/billing/refunds.md", "handbook/intro.txt", "handbook/broken.pdf"}


def test_loading_the_same_folder_again_changes_nothing(kb, tmp_path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nAlpha.")
    call_command("ingest", str(folder), kb=kb.slug, inline=True, stdout=io.StringIO())
    out = io.StringIO()

    call_command("ingest", str(folder), kb=kb.slug, inline=True, stdout=out)

    assert "ok: 0 (of which 0 new versions), skipped as duplicate: 1, failed: 0" in out.getvalue()


def test_an_unknown_knowledge_base_is_a_clear_error(kb, tmp_path) -> None:
    with pytest.raises(CommandError, match="no knowledge base with slug 'nope'"):
        call_command("ingest", str(tmp_path), kb="nope")
