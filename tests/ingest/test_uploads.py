"""document_create: names, limits and types at the service level."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from ingest.services.uploads import UploadRejected, clean_filename, document_create
from tests.factories import upload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("re\x00port.pdf", "report.pdf"),
        ("tab\tand\nnewline.md", "tabandnewline.md"),
        (".hidden.md", "hidden.md"),
        ("", "unnamed"),
        ("é" * 300 + ".txt", "é" * 255),
    ],
)
def test_hostile_names_are_cleaned_for_display(raw, clean) -> None:
    assert clean_filename(raw) == clean


def test_a_hostile_name_never_reaches_the_filesystem(kb) -> None:
    document = upload(kb, "../../\x00evil.md", b"# Evil\n\nNot really.").document

    stored = document.file.name or ""
    assert stored.startswith(f"documents/{kb.account_id}/") and stored.endswith(".md")
    assert "evil" not in stored and ".." not in stored and "\x00" not in stored
    assert document.original_filename == "evil.md"


def test_an_html_page_renamed_to_pdf_is_refused_before_storage(kb) -> None:
    with pytest.raises(UploadRejected, match="named .pdf but its content is HTML"):
        document_create(
            knowledge_base=kb,
            upload=ContentFile(b"<!doctype html><html><body>Hi</body></html>", name="a.pdf"),
        )


def test_an_oversized_file_is_refused_with_both_sizes(kb, settings) -> None:
    settings.CAIRN_MAX_UPLOAD_MB = 1

    with pytest.raises(UploadRejected, match="the file is 2.0 MB; the limit is 1 MB"):
        upload(kb, "big.txt", b"x" * (2 * 1024 * 1024))


def test_an_empty_file_is_refused(kb) -> None:
    with pytest.raises(UploadRejected, match="the file is empty"):
        upload(kb, "empty.txt", b"")
