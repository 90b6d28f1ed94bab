"""The one place that maps a file type (``ingest.filetypes.FileType.key``) to its parser.

List items use ``Block.level`` 1 for a top-level item, 2 for an item nested in it, and so
on, the same way headings count from 1; paragraphs, table rows and code have level 0.
"""

from __future__ import annotations

from typing import BinaryIO

from ingest.parsing.base import ParsedDocument, ParseError, ParseLimits, Parser
from ingest.parsing.docx import DocxParser
from ingest.parsing.html import HtmlParser
from ingest.parsing.markdown import MarkdownParser
from ingest.parsing.pdf import PdfParser
from ingest.parsing.text import TextParser

PARSERS: dict[str, Parser] = {
    parser.file_type: parser
    for parser in (TextParser(), MarkdownParser(), HtmlParser(), PdfParser(), DocxParser())
}
PARSERS["htm"] = PARSERS["html"]


def parser_for(file_type_key: str) -> Parser:
    """The parser for ``file_type_key`` ("txt", "md", "html", "pdf", "docx"); ParseError if none."""
    try:
        return PARSERS[file_type_key.lower()]
    except KeyError:
        supported = ", ".join(sorted(PARSERS))
        raise ParseError(
            f"Cairn cannot read files of type {file_type_key!r}; it reads {supported}"
        ) from None


def parse_document(
    stream: BinaryIO, *, file_type: str, limits: ParseLimits | None = None
) -> ParsedDocument:
    """The blocks of the document in ``stream`` (read from its start); raises ParseError."""
    parser = parser_for(file_type)
    stream.seek(0)
    return parser.parse(stream, limits=limits or ParseLimits())
