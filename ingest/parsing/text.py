"""Plain text (.txt), and the text rules every parser shares.

The shared part is ``BlockCollector``: every parser hands it raw block texts, and it
applies the ``Block`` invariants in one place (whitespace normalised, code kept verbatim,
empty blocks dropped), counts characters against ``ParseLimits.max_chars`` as it goes, so
a huge document stops early, and turns "no blocks" into the one "no text found" error.

Plain text has no markup, so structure is guessed conservatively: paragraphs are
separated by blank lines, a line underlined with ``====`` or ``----`` is a heading
(level 1 or 2), a short ALL-CAPS line standing alone is a level-2 heading, lines starting
with a bullet or a number are list items, and a paragraph indented by four spaces or more
is code (kept verbatim, like Markdown's indented code).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from ingest.parsing.base import (
    BLOCK_SEPARATOR,
    Block,
    BlockKind,
    ParsedDocument,
    ParseError,
    ParseLimits,
)
from ingest.parsing.decoding import decode_text

NO_TEXT = "no text found in the document"
MAX_TITLE_CHARS = 300  # Document.title's max_length

# C0 controls (except tab and newline), DEL and the soft hyphen carry no text; vertical
# tab and form feed separate words like a space.
_CONTROLS: dict[int, str | None] = {code: None for code in (*range(0x20), 0x7F, 0xAD)}
_CONTROLS.update({ord("\t"): "\t", ord("\n"): "\n", ord("\r"): " ", 0x0B: " ", 0x0C: " "})

# A bullet ("-", "*", "•", …) or a number ("1.", "2)") followed by whitespace and text.
LIST_MARKER = re.compile(r"(?:(?P<bullet>[-*•◦▪‣●○■–])|(?P<number>\d{1,3}[.)]))\s+(?=\S)")


def clean_text(text: str) -> str:
    """``text`` without control characters (tabs and newlines kept)."""
    return text.translate(_CONTROLS)


def normalise_space(text: str) -> str:
    """``text`` with every run of whitespace, line breaks included, turned into one space."""
    return " ".join(text.translate(_CONTROLS).split())


def code_text(text: str) -> str:
    """Code kept verbatim, minus common indentation, trailing spaces and blank edge lines."""
    lines = [line.translate(_CONTROLS).rstrip() for line in text.splitlines()]
    # The first line cannot keep leading spaces: Block.text never starts with whitespace.
    return textwrap.dedent("\n".join(lines)).strip()


def list_item(line: str) -> str | None:
    """The item text if ``line`` (already stripped) starts with a list marker, else None.

    Bullets are dropped, numbers kept: "Step 3" must still be findable.
    """
    match = LIST_MARKER.match(line)
    if match is None:
        return None
    return line[match.end() :] if match.group("bullet") else line


def document_title(text: str | None) -> str | None:
    title = normalise_space(text or "")
    return title[:MAX_TITLE_CHARS].rstrip() or None


def too_long_message(limits: ParseLimits) -> str:
    return (
        f"the document has more than {limits.max_chars:,} characters of text, the most Cairn "
        f"accepts in one document; split it into smaller files and upload them separately"
    )


class BlockCollector:
    """Collects a document's blocks, enforcing the ``Block`` invariants and ``max_chars``."""

    def __init__(self, limits: ParseLimits) -> None:
        self.blocks: list[Block] = []
        self._limits = limits
        self._chars = 0

    def add(self, kind: BlockKind, text: str, *, level: int = 0, page: int | None = None) -> None:
        text = code_text(text) if kind is BlockKind.CODE else normalise_space(text)
        if not text:
            return
        if self.blocks:
            self._chars += len(BLOCK_SEPARATOR)
        self._chars += len(text)
        if self._chars > self._limits.max_chars:
            raise ParseError(too_long_message(self._limits))
        self.blocks.append(Block(kind, text, level, page))

    def first_heading(self, level: int) -> str | None:
        for block in self.blocks:
            if block.kind is BlockKind.HEADING and block.level == level:
                return block.text
        return None

    def document(
        self,
        *,
        title: str | None,
        page_count: int | None = None,
        warnings: list[str] | None = None,
        empty_message: str = NO_TEXT,
    ) -> ParsedDocument:
        if not self.blocks:
            raise ParseError(empty_message)
        return ParsedDocument(
            blocks=self.blocks,
            title=document_title(title),
            page_count=page_count,
            warnings=list(warnings or []),
        )


# --- the .txt parser ----------------------------------------------------------------------

_UNDERLINE = re.compile(r"[ \t]*(?:={3,}|-{3,})[ \t]*")
_DECORATION = re.compile(r"[ \t]*([-=*_~#])\1{2,}[ \t]*")
_CODE_INDENT = 4
_MAX_HEADING_CHARS = 120
_MAX_CAPS_HEADING_CHARS = 80


class TextParser:
    """Plain text; the title is the first block when that block is a heading."""

    file_type: ClassVar[str] = "txt"

    def parse(self, stream: BinaryIO, *, limits: ParseLimits) -> ParsedDocument:
        decoded = decode_text(stream.read())
        collector = BlockCollector(limits)
        _PlainTextReader(collector).read(decoded.text)
        first = collector.blocks[0] if collector.blocks else None
        title = first.text if first is not None and first.kind is BlockKind.HEADING else None
        return collector.document(title=title, warnings=decoded.warnings)


class _PlainTextReader:
    """Turns plain text into blocks; list nesting is remembered across blank lines."""

    def __init__(self, collector: BlockCollector) -> None:
        self._collector = collector
        self._list_indents: list[int] = []

    def read(self, text: str) -> None:
        # A file indented as a whole (a quoted e-mail, say) is not one big code block.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        for group in _groups(textwrap.dedent(clean_text(text)).splitlines()):
            self._read_group(group)

    def _read_group(self, lines: list[str]) -> None:
        first = lines[0].strip()
        if all(_indent(line) >= _CODE_INDENT for line in lines) and list_item(first) is None:
            self._list_indents.clear()
            self._collector.add(BlockKind.CODE, "\n".join(lines))
            return
        if len(lines) == 1 and _is_caps_heading(first):
            self._heading(first, 2)
            return
        kind, level = BlockKind.PARAGRAPH, 0
        buffer: list[str] = []
        index = 0
        while index < len(lines):
            line, stripped = lines[index], lines[index].strip()
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if _is_underlined_heading(stripped, following):
                self._collector.add(kind, " ".join(buffer), level=level)
                kind, level, buffer = BlockKind.PARAGRAPH, 0, []
                self._heading(stripped, 1 if following.strip().startswith("=") else 2)
                index += 2
                continue
            index += 1
            if _DECORATION.fullmatch(line):
                continue
            item = list_item(stripped)
            if item is not None:
                self._collector.add(kind, " ".join(buffer), level=level)
                kind, level, buffer = BlockKind.LIST_ITEM, self._list_level(line), [item]
            else:
                if kind is BlockKind.PARAGRAPH:
                    self._list_indents.clear()
                # Inside a list item, a line without a marker continues the item.
                buffer.append(stripped)
        self._collector.add(kind, " ".join(buffer), level=level)

    def _heading(self, text: str, level: int) -> None:
        self._list_indents.clear()
        self._collector.add(BlockKind.HEADING, text, level=level)

    def _list_level(self, line: str) -> int:
        indent, indents = _indent(line), self._list_indents
        while indents and indent < indents[-1]:
            indents.pop()
        if not indents or indent > indents[-1]:
            indents.append(indent)
        return len(indents)


def _groups(lines: list[str]) -> Iterator[list[str]]:
    """Runs of non-blank lines."""
    group: list[str] = []
    for line in lines:
        if line.strip():
            group.append(line)
        elif group:
            yield group
            group = []
    if group:
        yield group


def _indent(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip())


def _is_underlined_heading(stripped: str, following: str) -> bool:
    return (
        bool(stripped)
        and len(stripped) <= _MAX_HEADING_CHARS
        and _UNDERLINE.fullmatch(following) is not None
        and not _DECORATION.fullmatch(stripped)
        and list_item(stripped) is None
    )


def _is_caps_heading(stripped: str) -> bool:
    letters = sum(character.isalpha() for character in stripped)
    return (
        letters >= 2
        and len(stripped) <= _MAX_CAPS_HEADING_CHARS
        and stripped.isupper()
        and not stripped.endswith((".", ",", ";", "!"))
        and list_item(stripped) is None
    )
