"""File types are decided by content and must agree with the extension."""

from __future__ import annotations

import io
import zipfile

import pytest

from ingest.filetypes import DOCX, HTML, MARKDOWN, PDF, TXT, FileTypeError, detect_file_type


def _docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.txt", b"Plain words.", TXT),
        ("guide.md", b"# Guide\n\nText", MARKDOWN),
        ("page.HTML", b"<!DOCTYPE html><html></html>", HTML),
        ("fragment.htm", b"<h1>Just a fragment</h1>", HTML),
        ("manual.pdf", b"%PDF-1.7\n...", PDF),
        ("policy.docx", _docx_bytes(), DOCX),
        ("latin1.txt", "Café crème".encode("latin-1"), TXT),
    ],
)
def test_accepted_types(name, content, expected) -> None:
    assert detect_file_type(io.BytesIO(content), name) == expected


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("report.pdf", b"<html><body>hi</body></html>", "named .pdf but its content is HTML"),
        ("policy.docx", b"%PDF-1.4", "named .docx but its content is PDF"),
        ("archive.docx", b"PK\x03\x04garbage", "looks like a ZIP archive but is damaged"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n", "content is a PNG image"),
        ("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1", "legacy Office file"),
        ("setup.exe", b"MZ", "unsupported file type (.exe)"),
        ("README", b"text", "unsupported file type (no extension)"),
    ],
)
def test_rejected_types_say_why(name, content, message) -> None:
    with pytest.raises(FileTypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        detect_file_type(io.BytesIO(content), name)


def test_zip_that_is_not_a_word_document_is_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "a,b")

    with pytest.raises(FileTypeError, match="a ZIP archive that is not a Word document"):
        detect_file_type(buffer, "data.docx")
