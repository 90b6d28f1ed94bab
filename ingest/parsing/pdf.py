"""PDF, read with pypdf: text only, page by page, never images (Cairn does no OCR).

A PDF has no paragraphs or headings, only positioned glyphs, so structure is rebuilt
from what pypdf's text visitor reports for each piece of text: its baseline and its
effective font size. Lines are grouped into paragraphs where the vertical gap is clearly
larger than the usual line spacing (or a short line ends a sentence); a line starting with
a bullet or number starts a list item; a short line in a font clearly larger than the body
text, or all bold, is a heading, larger fonts giving higher levels. Running headers and
footers (the same line at the top or bottom of most pages) and bare page numbers are
dropped. Every block carries its 1-based page number; no block spans two pages.

Hostile files are contained by pypdf's own limits, narrowed for the duration of one parse
through ``pypdf.apply_configuration`` (the module constants in ``pypdf.filters`` are
deprecated in 7.x and no longer read): every decompressed stream is capped at
``ParseLimits.max_pdf_stream_bytes``, and ``jbig2dec`` is never run. Any pypdf failure
becomes a ``ParseError``, so a damaged upload fails with a readable reason.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from pypdf import PasswordType, PdfReader, apply_configuration
from pypdf.errors import DependencyError, LimitReachedError

from ingest.parsing.base import BlockKind, ParsedDocument, ParseError, ParseLimits
from ingest.parsing.text import NO_TEXT, BlockCollector, list_item, too_long_message

ENCRYPTED = "the PDF is encrypted; remove the password and upload it again"
DAMAGED = "the PDF is damaged and cannot be read"
NO_TEXT_IN_PDF = f"{NO_TEXT} (is it a scanned PDF? Cairn does not do OCR)"

_HEADING_SIZE_RATIO = 1.08  # 12 pt headings over 11 pt body text still count
_PARAGRAPH_GAP_RATIO = 1.35  # a gap this much above the usual line spacing ends a paragraph
_SHORT_LINE_RATIO = 0.6  # a line shorter than this part of the page's longest one …
_SENTENCE_END = (".", "!", "?", ":")  # … ending a sentence ends its paragraph
_MAX_HEADING_CHARS = 120
_MAX_HEADING_WORDS = 15
_MAX_HEADING_LEVEL = 6
_RUNNING_LINE_MIN_PAGES = 3
_BOLD_FONT = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
# Word's PDF export writes "Microsoft Word - report.docx" when the title is unset.
_EXPORTER_PREFIX = re.compile(r"^microsoft (?:word|powerpoint|excel) - ", re.IGNORECASE)
_FILE_NAME = re.compile(r"\.(?:docx?|pdf|pptx?|xlsx?|odt|rtf|txt|html?|indd|tex)$", re.IGNORECASE)
_PLACEHOLDER_TITLES = frozenset({"", "untitled", "untitled document", "title", "document"})
_PAGE_NUMBER = re.compile(r"\W*(?:page\s*)?#(?:\s*(?:of|/)\s*#)?\W*")


def _bomb_message(limits: ParseLimits) -> str:
    return (
        f"the PDF contains a compressed stream that expands to more than "
        f"{limits.max_pdf_stream_bytes:,} bytes, which looks like a decompression bomb; "
        f"Cairn does not read it"
    )


class PdfParser:
    file_type: ClassVar[str] = "pdf"

    def parse(self, stream: BinaryIO, *, limits: ParseLimits) -> ParsedDocument:
        cap = limits.max_pdf_stream_bytes
        with apply_configuration(
            zlib_maximum_output_length=cap,
            lzw_maximum_output_length=cap,
            run_length_maximum_output_length=cap,
            brotli_maximum_output_length=cap,
            array_based_stream_maximum_output_length=cap,
            jbig2dec_binary=None,
        ):
            try:
                return self._parse(stream, limits)
            except ParseError:
                raise
            except LimitReachedError as exc:
                raise ParseError(_bomb_message(limits)) from exc
            except DependencyError as exc:  # AES needs the cryptography package
                raise ParseError(ENCRYPTED) from exc
            except MemoryError as exc:
                raise ParseError(
                    "the PDF needs more memory to read than Cairn allows for one document"
                ) from exc
            except Exception as exc:  # pypdf raises many types for broken files
                raise ParseError(DAMAGED) from exc

    def _parse(self, stream: BinaryIO, limits: ParseLimits) -> ParsedDocument:
        reader = _open(stream)
        page_count = len(reader.pages)
        if page_count == 0:
            raise ParseError(DAMAGED)
        if page_count > limits.max_pdf_pages:
            raise ParseError(
                f"the PDF has {page_count:,} pages, more than the limit of "
                f"{limits.max_pdf_pages:,}; split it into smaller files and upload them"
            )
        pages: list[list[_Line]] = []
        characters = 0
        for page in reader.pages:
            builder = _LineBuilder()
            page.extract_text(visitor_text=builder.visit)
            lines = builder.finish()
            characters += sum(len(line.text) + 1 for line in lines)
            if characters > limits.max_chars:
                raise ParseError(too_long_message(limits))
            pages.append(lines)
        collector = BlockCollector(limits)
        _Layout(pages).write(collector)
        title = _metadata_title(reader) or collector.first_heading(1)
        return collector.document(title=title, page_count=page_count, empty_message=NO_TEXT_IN_PDF)


def _open(stream: BinaryIO) -> PdfReader:
    stream.seek(0)
    reader = PdfReader(stream, strict=False)  # tries the empty password by itself
    if reader.is_encrypted:
        try:
            decrypted = reader.decrypt("") != PasswordType.NOT_DECRYPTED
        except Exception:  # AES without the cryptography package, broken /Encrypt
            decrypted = False
        if not decrypted:
            raise ParseError(ENCRYPTED)
    return reader


def _metadata_title(reader: PdfReader) -> str | None:
    """The /Title of the document info, unless it is a placeholder or a file name."""
    try:
        metadata = reader.metadata
        title = (metadata.title or "") if metadata is not None else ""
    except Exception:  # a broken /Info dictionary only costs the title
        return None
    title = _EXPORTER_PREFIX.sub("", title.strip())
    if title.lower() in _PLACEHOLDER_TITLES or _FILE_NAME.search(title):
        return None
    return title


@dataclass
class _Line:
    text: str
    y: float | None  # baseline in page space, upwards; None if pypdf gave no position
    size: float  # effective font size in points, 0 if unknown
    bold: bool


@dataclass
class _LineBuilder:
    """Receives pypdf's visitor calls for one page and cuts them into lines."""

    lines: list[_Line] = field(default_factory=list)
    _parts: list[str] = field(default_factory=list)
    _y: float | None = None
    _sizes: Counter[float] = field(default_factory=Counter)
    _bold: bool = True
    _bold_fonts: dict[int, bool] = field(default_factory=dict)

    def visit(self, text: str, cm: Any, tm: Any, font: Any, font_size: Any) -> None:
        if not text:
            return
        for index, piece in enumerate(text.split("\n")):
            if index:
                self._end_line()
            if piece:
                self._add(piece, cm, tm, font, font_size)

    def finish(self) -> list[_Line]:
        self._end_line()
        return self.lines

    def _add(self, piece: str, cm: Any, tm: Any, font: Any, font_size: Any) -> None:
        self._parts.append(piece)
        visible = len(piece.strip())
        if not visible:
            return
        try:
            # The text matrix times the current transformation matrix, y column only.
            scale = math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3])
            y = float(tm[4] * cm[1] + tm[5] * cm[3] + cm[5])
            size = round(float(font_size) * scale * 2) / 2
        except (TypeError, ValueError, IndexError):
            y, size = None, 0.0
        if self._y is None:
            self._y = y
        self._sizes[size] += visible
        self._bold = self._bold and self._is_bold(font)

    def _is_bold(self, font: Any) -> bool:
        key = id(font)
        if key not in self._bold_fonts:
            name = font.get("/BaseFont", "") if hasattr(font, "get") else ""
            self._bold_fonts[key] = bool(_BOLD_FONT.search(str(name)))
        return self._bold_fonts[key]

    def _end_line(self) -> None:
        text = "".join(self._parts).strip()
        if text:
            size = self._sizes.most_common(1)[0][0] if self._sizes else 0.0
            self.lines.append(_Line(text, self._y, size, self._bold))
        self._parts.clear()
        self._sizes.clear()
        self._y, self._bold = None, True


class _Layout:
    """Turns the lines of all pages into blocks, using document-wide font statistics."""

    def __init__(self, pages: list[list[_Line]]) -> None:
        self._pages = _without_running_lines(pages)
        lines = [line for page in self._pages for line in page]
        sizes: Counter[float] = Counter()
        for line in lines:
            sizes[line.size] += len(line.text)
        self._body_size = sizes.most_common(1)[0][0] if sizes else 0.0
        self._levels = self._heading_levels(lines)
        self._paragraph_gap = self._usual_gap() * _PARAGRAPH_GAP_RATIO

    def write(self, collector: BlockCollector) -> None:
        for number, lines in enumerate(self._pages, start=1):
            longest = max((len(line.text) for line in lines), default=0)
            for kind, level, text in self._page_blocks(lines, longest):
                collector.add(kind, text, level=level, page=number)

    def _page_blocks(
        self, lines: list[_Line], longest: int
    ) -> Iterator[tuple[BlockKind, int, str]]:
        kind, level = BlockKind.PARAGRAPH, 0
        parts: list[str] = []
        previous: _Line | None = None
        for index, line in enumerate(lines):
            following = lines[index + 1] if index + 1 < len(lines) else None
            heading = self._heading_level(line, following)
            item = list_item(line.text)
            if heading:
                continues = kind is BlockKind.HEADING and level == heading
                if not (continues and previous is not None and self._close(previous, line)):
                    yield kind, level, _join(parts)
                    kind, level, parts = BlockKind.HEADING, heading, []
                parts.append(line.text)
            elif item is not None:
                yield kind, level, _join(parts)
                kind, level, parts = BlockKind.LIST_ITEM, 1, [item]
            elif (
                previous is None
                or kind is BlockKind.HEADING
                or self._breaks(previous, line, longest)
            ):
                yield kind, level, _join(parts)
                kind, level, parts = BlockKind.PARAGRAPH, 0, [line.text]
            else:
                parts.append(line.text)
            previous = line
        yield kind, level, _join(parts)

    def _heading_level(self, line: _Line, following: _Line | None) -> int:
        if not _heading_shaped(line.text):
            return 0
        if line.size in self._levels:
            return self._levels[line.size]
        # Bold body text alone on its line, followed by regular text: a run-in heading.
        if line.bold and following is not None and not following.bold and self._is_body(line):
            return min(len(self._levels) + 1, _MAX_HEADING_LEVEL)
        return 0

    def _breaks(self, previous: _Line, line: _Line, longest: int) -> bool:
        """Whether ``line`` starts a new paragraph after ``previous``."""
        if abs(line.size - previous.size) > 1:
            return True
        if previous.y is not None and line.y is not None and self._paragraph_gap:
            gap = previous.y - line.y
            if gap > self._paragraph_gap or gap < -line.size:  # a wide gap, or a new column
                return True
        short = len(previous.text) < longest * _SHORT_LINE_RATIO
        return short and previous.text.endswith(_SENTENCE_END)

    def _close(self, previous: _Line, line: _Line) -> bool:
        """Whether two heading lines are one heading wrapped over two lines."""
        if previous.y is None or line.y is None:
            return False
        return 0 < previous.y - line.y <= line.size * 1.6

    def _is_body(self, line: _Line) -> bool:
        return abs(line.size - self._body_size) <= self._body_size * (_HEADING_SIZE_RATIO - 1)

    def _heading_levels(self, lines: list[_Line]) -> dict[float, int]:
        """Font sizes clearly above the body size, largest first: level 1, 2, …"""
        threshold = self._body_size * _HEADING_SIZE_RATIO
        larger = {
            line.size for line in lines if line.size > threshold and _heading_shaped(line.text)
        }
        ranked = sorted(larger, reverse=True)
        return {size: min(rank, _MAX_HEADING_LEVEL) for rank, size in enumerate(ranked, start=1)}

    def _usual_gap(self) -> float:
        gaps = [
            previous.y - line.y
            for page in self._pages
            for previous, line in zip(page, page[1:], strict=False)
            if previous.y is not None
            and line.y is not None
            and self._is_body(previous)
            and self._is_body(line)
            and previous.y > line.y
        ]
        return statistics.median(gaps) if gaps else 0.0


def _heading_shaped(text: str) -> bool:
    return (
        len(text) <= _MAX_HEADING_CHARS
        and len(text.split()) <= _MAX_HEADING_WORDS
        and any(character.isalpha() for character in text)
        and not text.endswith((".", ",", ";", ":"))
        and list_item(text) is None
    )


def _join(lines: list[str]) -> str:
    """Lines of one block as one string; a word hyphenated at a line end keeps its hyphen."""
    if not lines:
        return ""
    parts = [lines[0]]
    for line in lines[1:]:
        previous = parts[-1]
        glued = previous.endswith("-") and previous[-2:-1].isalpha() and line[:1].islower()
        parts.append(line if glued else " " + line)
    return "".join(parts)


def _without_running_lines(pages: list[list[_Line]]) -> list[list[_Line]]:
    """The pages without running headers/footers and bare page numbers.

    Only the first and last line of a page are candidates, compared with digits masked
    ("Report 2026 - page 3" is the same line on every page).
    """
    keys: Counter[str] = Counter()
    for lines in pages:
        keys.update({_mask(line.text) for line in (lines[:1] + lines[-1:])})
    needed = max(_RUNNING_LINE_MIN_PAGES, (len(pages) + 1) // 2)
    running = {key for key, count in keys.items() if count >= needed}

    def dropped(line: _Line) -> bool:
        key = _mask(line.text)
        return key in running or _PAGE_NUMBER.fullmatch(key) is not None

    cleaned = []
    for lines in pages:
        lines = list(lines)
        if lines and dropped(lines[0]):
            lines.pop(0)
        if lines and dropped(lines[-1]):
            lines.pop()
        cleaned.append(lines)
    return cleaned


def _mask(text: str) -> str:
    return _DIGITS.sub("#", text.lower())
