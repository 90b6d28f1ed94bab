"""Small documents built in code for the parser tests, so no binary fixture is committed.

PDFs are written by hand (catalog, page tree, two standard-14 fonts, one content stream
per page, correct xref), which is fast and keeps every byte visible; pypdf only adds
encryption on top. Word documents come from python-docx, raw ZIPs from zipfile.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import docx
from pypdf import PdfReader, PdfWriter

PAGE_HEIGHT = 792
TOP = 740
LEFT = 72


@dataclass(frozen=True)
class Line:
    """One line of PDF text; ``gap`` is extra space above it (a paragraph break)."""

    text: str
    size: float = 11
    bold: bool = False
    gap: float = 0


def para(*lines: str, size: float = 11) -> list[Line]:
    """Lines of one paragraph, with a paragraph gap above the first."""
    return [Line(text, size, gap=size if index == 0 else 0) for index, text in enumerate(lines)]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content(lines: Sequence[Line]) -> bytes:
    operations, y = [], float(TOP)
    for line in lines:
        y -= line.gap
        font = "/F2" if line.bold else "/F1"
        operations.append(
            f"BT {font} {line.size:g} Tf {LEFT} {y:.1f} Td ({_escape(line.text)}) Tj ET"
        )
        y -= line.size * 1.4
    return "\n".join(operations).encode("latin-1")


def pdf_bytes(
    pages: Sequence[Sequence[Line]],
    *,
    title: str | None = None,
    compressed_padding: int = 0,
) -> bytes:
    """A PDF with one page per item of ``pages``.

    ``compressed_padding`` appends that many spaces to every content stream and stores it
    Flate-compressed: a small file that expands a lot (a decompression bomb in miniature).
    """
    page_ids = [5 + 2 * index for index in range(len(pages))]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % page_id for page_id in page_ids)
        + b"] /Count %d >>" % len(pages),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>",
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 %d] " % PAGE_HEIGHT
            + b"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>"
            % (page_id + 1)
        )
        content = _content(lines)
        if compressed_padding:
            data = zlib.compress(content + b" " * compressed_padding, 9)
            objects[page_id + 1] = (
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data)
                + data
                + b"\nendstream"
            )
        else:
            objects[page_id + 1] = (
                b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
            )
    info_id = None
    if title is not None:
        info_id = max(objects) + 1
        objects[info_id] = b"<< /Title (" + _escape(title).encode("latin-1") + b") >>"
    return _assemble(objects, info_id)


def aes256_encrypted_pdf() -> bytes:
    """A PDF whose /Encrypt dictionary asks for AES-256 (revision 6).

    The keys are filler, so no password opens it; what matters is that checking even the
    empty password needs AES, which pypdf can only do with an extra crypto package.
    """
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [] /Count 0 >>",
        3: b"<< /Filter /Standard /V 5 /R 6 /Length 256 /P -4 "
        + b"/O <%s> /U <%s> " % (b"11" * 48, b"22" * 48)
        + b"/OE <%s> /UE <%s> /Perms <%s> " % (b"33" * 32, b"44" * 32, b"55" * 16)
        + b"/CF << /StdCF << /CFM /AESV3 /AuthEvent /DocOpen /Length 32 >> >> "
        + b"/StmF /StdCF /StrF /StdCF >>",
    }
    return _assemble(
        objects, None, trailer=b" /Encrypt 3 0 R /ID [<%s> <%s>]" % (b"ab" * 16, b"ab" * 16)
    )


def _assemble(objects: dict[int, bytes], info_id: int | None, trailer: bytes = b"") -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n")
    xref = out.tell()
    size = max(objects) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for number in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[number])
    info = b" /Info %d 0 R" % info_id if info_id is not None else b""
    out.write(b"trailer\n<< /Size %d /Root 1 0 R%s%s >>\n" % (size, info, trailer))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def encrypted(pdf: bytes, *, user_password: str, owner_password: str) -> bytes:
    """``pdf`` encrypted with RC4-128, which pypdf reads without extra packages."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(build: Callable[[docx.document.Document], object]) -> bytes:
    document = docx.Document()
    build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()
