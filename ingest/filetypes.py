"""Deciding a document's type from its bytes, checked against its file name.

The content decides; the extension must agree. A file whose name and content
disagree (HTML renamed to .pdf, say) is rejected with a message that says so,
because parsing it under the wrong type would fail later with a worse one.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

SNIFF_BYTES = 8192


class FileTypeError(Exception):
    """The file cannot be accepted; the message tells the uploader why."""


@dataclass(frozen=True)
class FileType:
    key: str
    mime_type: str
    label: str


TXT = FileType("txt", "text/plain", "plain text")
MARKDOWN = FileType("md", "text/markdown", "Markdown")
HTML = FileType("html", "text/html", "HTML")
PDF = FileType("pdf", "application/pdf", "PDF")
DOCX = FileType(
    "docx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "Word (.docx)",
)

BY_EXTENSION: dict[str, FileType] = {
    ".txt": TXT,
    ".text": TXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
}
ACCEPTED_EXTENSIONS = ", ".join(sorted({".txt", ".md", ".html", ".pdf", ".docx"}))

# Content families: what the bytes are, independent of the name.
_TEXT, _PDF, _DOCX = "text", "pdf", "docx"
_FAMILY = {TXT: _TEXT, MARKDOWN: _TEXT, HTML: _TEXT, PDF: _PDF, DOCX: _DOCX}
_BINARY_SIGNATURES: dict[bytes, str] = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"\xd0\xcf\x11\xe0": "a legacy Office file (.doc/.xls); save it as .docx",
    b"\x7fELF": "a program",
    b"MZ": "a Windows program",
    b"Rar!": "a RAR archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
}


def _content_family(stream: BinaryIO) -> tuple[str, str]:
    """(family, description) of the content; description names it for messages."""
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    if head.startswith(b"%PDF-"):
        return _PDF, "PDF"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(stream) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile as exc:
            raise FileTypeError("the file looks like a ZIP archive but is damaged") from exc
        finally:
            stream.seek(0)
        if "word/document.xml" in names:
            return _DOCX, "a Word document"
        return "zip", "a ZIP archive that is not a Word document"
    for signature, description in _BINARY_SIGNATURES.items():
        if head.startswith(signature):
            return "binary", description
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "binary", "binary data, not text"
    return _TEXT, "HTML" if _looks_like_html(head) else "text"


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html")) or b"<html" in start[:1024]


def detect_file_type(stream: BinaryIO, filename: str) -> FileType:
    """The type of ``stream``, whose name is ``filename``; raises FileTypeError.

    The stream is left at position 0.
    """
    extension = PurePosixPath(filename).suffix.lower()
    claimed = BY_EXTENSION.get(extension)
    if claimed is None:
        shown = extension or "no extension"
        raise FileTypeError(f"unsupported file type ({shown}); Cairn accepts {ACCEPTED_EXTENSIONS}")
    family, description = _content_family(stream)
    if family != _FAMILY[claimed]:
        raise FileTypeError(
            f"the file is named {extension} but its content is {description}; "
            f"upload it with the extension that matches its content"
        )
    return claimed


def file_type_for_mime(mime_type: str) -> FileType:
    """The FileType a stored document was accepted as (Document.mime_type)."""
    for file_type in (TXT, MARKDOWN, HTML, PDF, DOCX):
        if file_type.mime_type == mime_type:
            return file_type
    raise FileTypeError(f"unsupported stored type {mime_type}")
