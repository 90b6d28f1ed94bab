"""Word (.docx), read with python-docx after the ZIP container has been checked.

A .docx is a ZIP archive, so before python-docx opens it the central directory is
checked against ``ParseLimits`` (entry count, declared uncompressed total, per-entry
compression ratio): a zip bomb is refused without inflating a byte. The declared sizes
can be trusted for this because Python's ``zipfile`` never returns more bytes than an
entry declares. The ratio is only checked for entries that expand to more than 1 MiB:
small XML parts legitimately compress 20-200 times, and no entry that small can hurt.

The body is read in document order, including content controls (``w:sdt``). Headings
come from the "Title" and "Heading 1-9" styles or an outline level (so localised style
names work too); list items from numbering (``w:numPr``, on the paragraph or its style),
the "List Bullet"/"List Number" styles, or a typed bullet or number; tables give one row
per block, with horizontally merged cells, which python-docx repeats, written once.
Tracked insertions are read and tracked deletions skipped, as Word shows them with
"Accept all". Text boxes, headers, footers, footnotes and comments are not read.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

import docx
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.parsing.base import BlockKind, ParsedDocument, ParseError, ParseLimits
from ingest.parsing.text import BlockCollector, list_item

DAMAGED = "the Word document is damaged and cannot be read"
_RATIO_FLOOR_BYTES = 1024 * 1024
_MAX_HEADING_LEVEL = 6
_MAX_STYLE_CHAIN = 20  # basedOn chains can loop in hand-made files
_HEADING_STYLE = re.compile(r"heading\s*(\d)", re.IGNORECASE)
_LIST_STYLE = re.compile(r"list\s+(?:bullet|number)(?:\s+(\d))?", re.IGNORECASE)
_UNNUMBERED_FORMATS = frozenset({"bullet", "none", ""})
_W_P, _W_TBL, _W_SDT, _W_SDT_CONTENT = qn("w:p"), qn("w:tbl"), qn("w:sdt"), qn("w:sdtContent")
_W_VAL = qn("w:val")
# Runs that show text, in document order: direct, in hyperlinks, tracked insertions,
# simple fields, smart tags, custom XML and inline content controls (w:del is left out).
_RUNS = (
    "w:r | w:hyperlink | w:ins/w:r | w:fldSimple/w:r | w:smartTag/w:r | w:customXml/w:r"
    " | w:sdt/w:sdtContent/w:r | w:ins/w:hyperlink"
)


class DocxParser:
    file_type: ClassVar[str] = "docx"

    def parse(self, stream: BinaryIO, *, limits: ParseLimits) -> ParsedDocument:
        check_zip(stream, limits)
        collector = BlockCollector(limits)
        try:
            stream.seek(0)
            document = docx.Document(stream)
            reader = _DocxReader(document, collector)
            reader.read()
            title = document.core_properties.title or reader.title
        except ParseError:
            raise
        except Exception as exc:  # python-docx, lxml and zipfile all fail in their own way
            raise ParseError(DAMAGED) from exc
        return collector.document(title=title)


def check_zip(stream: BinaryIO, limits: ParseLimits) -> None:
    """Refuses a ZIP whose central directory promises more than ``limits`` allow."""
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ParseError(DAMAGED) from exc
    bomb = "the Word document looks like a zip bomb"
    if len(entries) > limits.max_zip_entries:
        raise ParseError(
            f"{bomb}: it contains {len(entries):,} files, more than the limit of "
            f"{limits.max_zip_entries:,}"
        )
    total = sum(entry.file_size for entry in entries)
    if total > limits.max_zip_uncompressed_bytes:
        raise ParseError(
            f"{bomb}: its files expand to {total:,} bytes, more than the limit of "
            f"{limits.max_zip_uncompressed_bytes:,}"
        )
    for entry in entries:
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > _RATIO_FLOOR_BYTES and ratio > limits.max_zip_ratio:
            raise ParseError(
                f"{bomb}: {entry.filename[:100]} expands {ratio:,.0f} times, more than the "
                f"limit of {limits.max_zip_ratio:,.0f} times"
            )


@dataclass(frozen=True)
class _Style:
    heading_level: int  # 0: not a heading
    is_title: bool
    list_level: int  # 0: not a list style
    num_id: str | None  # numbering inherited from the style
    ilvl: int


class _DocxReader:
    def __init__(self, document: Any, collector: BlockCollector) -> None:
        self._document = document
        self._collector = collector
        self._styles: dict[str | None, _Style] = {}
        self._numbering = _Numbering(document)
        self._title_style_text: str | None = None
        self._first_h1: str | None = None

    @property
    def title(self) -> str | None:
        return self._title_style_text or self._first_h1

    def read(self) -> None:
        for element in _block_elements(self._document.element.body):
            if element.tag == _W_P:
                self._paragraph(Paragraph(element, self._document))
            else:
                self._table(Table(element, self._document))

    def _paragraph(self, paragraph: Paragraph) -> None:
        text = _paragraph_text(paragraph)
        if not text.strip():
            return
        p_pr = paragraph._p.pPr
        style = self._style(paragraph)
        heading = _outline_level(p_pr) or style.heading_level
        if heading:
            self._collector.add(BlockKind.HEADING, text, level=heading)
            if style.is_title and self._title_style_text is None:
                self._title_style_text = text
            elif heading == 1 and self._first_h1 is None:
                self._first_h1 = text
            return
        own_num_id, own_ilvl = _numbering_of(p_pr)
        num_id = own_num_id or style.num_id
        if num_id is not None and num_id != "0":
            ilvl = own_ilvl if own_ilvl is not None else style.ilvl
            level = style.list_level if own_ilvl is None and style.list_level else ilvl + 1
            prefix = self._numbering.prefix(num_id, ilvl)
            self._collector.add(BlockKind.LIST_ITEM, prefix + text, level=level)
        elif style.list_level:
            self._collector.add(BlockKind.LIST_ITEM, text, level=style.list_level)
        elif (item := list_item(text.strip())) is not None:
            self._collector.add(BlockKind.LIST_ITEM, item, level=1)
        else:
            self._collector.add(BlockKind.PARAGRAPH, text)

    def _table(self, table: Table) -> None:
        for row in table.rows:
            cells, previous = [], None
            for cell in row.cells:
                if cell._tc is previous:  # one merged cell, repeated per grid column
                    continue
                previous = cell._tc
                cells.append(_cell_text(cell))
            if any(cells):
                self._collector.add(BlockKind.TABLE_ROW, " | ".join(cells))

    def _style(self, paragraph: Paragraph) -> _Style:
        style_id = paragraph._p.style
        if style_id not in self._styles:
            self._styles[style_id] = _style_info(paragraph.style)
        return self._styles[style_id]


def _block_elements(container: Any) -> Iterator[Any]:
    """Paragraphs and tables of the body in order, looking inside content controls."""
    for child in container.iterchildren():
        if child.tag in (_W_P, _W_TBL):
            yield child
        elif child.tag == _W_SDT:
            content = child.find(_W_SDT_CONTENT)
            if content is not None:
                yield from _block_elements(content)


def _paragraph_text(paragraph: Paragraph) -> str:
    """The paragraph's text, tracked insertions and fields included, deletions not.

    python-docx's ``Paragraph.text`` reads only direct runs and hyperlinks, so a document
    with unaccepted tracked changes would lose every inserted word.
    """
    runs = paragraph._p.xpath(_RUNS)
    return "".join(run.text for run in runs)


def _cell_text(cell: Any) -> str:
    parts = []
    for item in cell.iter_inner_content():
        if isinstance(item, Paragraph):
            parts.append(_paragraph_text(item))
        else:  # a nested table, flattened into the cell
            parts.extend(_cell_text(inner) for row in item.rows for inner in row.cells)
    return " ".join(" ".join(parts).split())


def _style_info(style: Any) -> _Style:
    """What a paragraph style makes of its paragraphs, following its basedOn chain."""
    name = (style.name or "") if style is not None else ""
    heading_match = _HEADING_STYLE.fullmatch(name)
    is_title = name.lower() == "title"
    heading = 1 if is_title else int(heading_match.group(1)) if heading_match else 0
    list_match = _LIST_STYLE.fullmatch(name)
    list_level = int(list_match.group(1) or 1) if list_match else 0
    num_id: str | None = None
    ilvl = 0
    current = style
    for _ in range(_MAX_STYLE_CHAIN):
        if current is None:
            break
        p_pr = current.element.pPr
        heading = heading or _outline_level(p_pr)
        if num_id is None:
            num_id, own_ilvl = _numbering_of(p_pr)
            ilvl = own_ilvl or 0
        current = current.base_style
    return _Style(min(heading, _MAX_HEADING_LEVEL), is_title, list_level, num_id, ilvl)


def _outline_level(p_pr: Any) -> int:
    """Heading level from ``w:outlineLvl`` (0-8; 9 means body text), 0 if none."""
    outline = p_pr.find(qn("w:outlineLvl")) if p_pr is not None else None
    level = _int(outline.get(_W_VAL) if outline is not None else None, 9)
    return min(level + 1, _MAX_HEADING_LEVEL) if 0 <= level < 9 else 0


def _numbering_of(p_pr: Any) -> tuple[str | None, int | None]:
    num_pr = p_pr.find(qn("w:numPr")) if p_pr is not None else None
    if num_pr is None:
        return None, None
    num_id, ilvl = num_pr.find(qn("w:numId")), num_pr.find(qn("w:ilvl"))
    return (
        num_id.get(_W_VAL) if num_id is not None else None,
        _int(ilvl.get(_W_VAL), 0) if ilvl is not None else None,
    )


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None and len(value) < 10 else default
    except ValueError:
        return default


class _Numbering:
    """Numbers Word would show before numbered list items, as "3. " prefixes.

    Counters are kept per list (``numId``) and level; a shallower item restarts deeper
    levels. Bulleted levels get no prefix.
    """

    def __init__(self, document: Any) -> None:
        self._levels: dict[str, dict[int, tuple[str, int]]] = {}
        self._counters: dict[str, dict[int, int]] = {}
        try:
            root = document.part.part_related_by(RELATIONSHIP_TYPE.NUMBERING).element
        except KeyError:
            return
        abstract: dict[str | None, dict[int, tuple[str, int]]] = {}
        for definition in root.findall(qn("w:abstractNum")):
            levels = {}
            for level in definition.findall(qn("w:lvl")):
                number_format = level.find(qn("w:numFmt"))
                start = level.find(qn("w:start"))
                levels[_int(level.get(qn("w:ilvl")), 0)] = (
                    number_format.get(_W_VAL, "") if number_format is not None else "decimal",
                    _int(start.get(_W_VAL) if start is not None else None, 1),
                )
            abstract[definition.get(qn("w:abstractNumId"))] = levels
        for num in root.findall(qn("w:num")):
            abstract_id = num.find(qn("w:abstractNumId"))
            if abstract_id is not None:
                self._levels[num.get(qn("w:numId"))] = abstract.get(abstract_id.get(_W_VAL), {})

    def prefix(self, num_id: str, ilvl: int) -> str:
        number_format, start = self._levels.get(num_id, {}).get(ilvl, ("bullet", 1))
        counters = self._counters.setdefault(num_id, {})
        for deeper in [level for level in counters if level > ilvl]:
            del counters[deeper]
        if number_format in _UNNUMBERED_FORMATS:
            return ""
        counters[ilvl] = counters.get(ilvl, start - 1) + 1
        return f"{counters[ilvl]}. "
