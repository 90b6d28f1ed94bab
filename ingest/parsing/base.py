"""What every parser produces, and the errors it may raise.

A parser turns a file's bytes into a ``ParsedDocument``: an ordered list of
structural ``Block``s (headings, paragraphs, list items, table rows, code) that
the chunker splits along. The document's canonical text — what chunk character
spans point into, and what the document view shows — is the blocks' texts joined
by ``BLOCK_SEPARATOR``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import BinaryIO, ClassVar, Protocol

BLOCK_SEPARATOR = "\n\n"


class BlockKind(StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    LIST_ITEM = "list_item"
    TABLE_ROW = "table_row"
    CODE = "code"


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str  # never empty; no leading/trailing whitespace
    level: int = 0  # heading level 1-6 for headings, nesting depth for list items
    page: int | None = None  # 1-based page number (PDF), None where pages do not exist


@dataclass(frozen=True)
class ParsedDocument:
    blocks: list[Block]
    title: str | None = None  # from the document itself (<title>, first H1, docx core title)
    page_count: int | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. "text decoded as cp1252"

    @property
    def text(self) -> str:
        return BLOCK_SEPARATOR.join(block.text for block in self.blocks)

    def block_offsets(self) -> list[int]:
        """Start offset of each block in ``text``."""
        offsets, position = [], 0
        for block in self.blocks:
            offsets.append(position)
            position += len(block.text) + len(BLOCK_SEPARATOR)
        return offsets


class ParseError(Exception):
    """The document cannot be parsed; ``str(error)`` is a sentence for the uploader.

    Always permanent: trying again gives the same result.
    """


@dataclass(frozen=True)
class ParseLimits:
    """Caps that keep hostile or huge files from exhausting a worker."""

    max_chars: int = 5_000_000  # extracted text
    max_pdf_pages: int = 2_000
    max_zip_entries: int = 1_000  # docx
    max_zip_uncompressed_bytes: int = 200 * 1024 * 1024  # docx, declared total
    max_zip_ratio: float = 100.0  # docx, declared uncompressed / compressed, per entry
    max_pdf_stream_bytes: int = 100 * 1024 * 1024  # decompressed content per page


class Parser(Protocol):
    """Parses one file type. Implementations are registered in ``ingest.parsing.registry``."""

    file_type: ClassVar[str]  # the key of ingest.filetypes.FileType: txt, md, html, pdf, docx

    def parse(self, stream: BinaryIO, *, limits: ParseLimits) -> ParsedDocument: ...
