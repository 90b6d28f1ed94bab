"""Quotable units of a chunk: sentences, list items, table rows.

The extractive answerer can only quote, and the reranker and the citation check judge
passages sentence by sentence, so all of them cut text the same way, here. A unit
knows what it needs to be understood but does not say itself (``context``: a table's
header row, the lead-in sentence of a list) and the heading it sits under
(``section``).

Cutting is pure (the chunk's text, title and heading path decide it) and the same
chunks come back question after question, for the reranker and then the answerer, so
each process remembers the units of the chunks it cut last (``UNITS_CACHE_SIZE``) and
the content terms of the texts it read last (``text_terms``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from kb.guard.passages import sentence_is_instruction
from kb.search.terms import content_terms
from kb.search.tokenize import tokenize
from kb.sentences import sentence_spans

# A unit shorter than this many content words is a fragment, unless it carries a
# number or is a table row (where "Storage | 50 GB" is the whole fact).
MIN_CONTENT_WORDS = 3
# Headings are short and unpunctuated; at most this many words.
MAX_HEADING_WORDS = 8

_TABLE_SEPARATOR = re.compile(r"^[\s|:+\-=_]*$")  # "---|---", "====", "------  -----"
_COLUMN_GAP = re.compile(r"\S {2,}\S")  # "Starter       60": a preformatted column
_LIST_MARKER = re.compile(r"^(?:[-*+•◦▪‣–—]|\d{1,3}[.)]|[A-Za-z][.)]|\(\w{1,3}\))\s+")
_TERMINAL = (".", "!", "?", ":", ";", "…", ")", '"', "”")
_FULL_STOPS = (".", "!", "?", "…")
# Chunks whose units a process remembers: a few MB, more than a search and an answer touch.
UNITS_CACHE_SIZE = 2048
TERMS_CACHE_SIZE = 16_384  # texts (units, chunks) whose content terms are remembered


@dataclass(frozen=True)
class Unit:
    position: int  # order within the chunk
    text: str  # what an answer quotes
    context: str = ""
    is_row: bool = False
    section: str = ""

    @property
    def scoring_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text

    @property
    def semantic_text(self) -> str:
        """What is embedded for a unit: its section name, its context, itself.

        "Released April 21, 2026" only answers "when was 4.3 released" under the
        heading "Version 4.3"; the heading is where that meaning lives.
        """
        return f"{self.section}: {self.scoring_text}" if self.section else self.scoring_text

    @property
    def terms(self) -> frozenset[str]:
        """The content terms of ``scoring_text``."""
        return text_terms(self.scoring_text)

    @property
    def quoted_texts(self) -> tuple[str, ...]:
        """The sentences an answer quoting this unit shows, as the citation check reads
        them: the quote alone, and introduced by its section when the section names a
        number or a code (the only sections an answer puts in front: unit_quote)."""
        quoted = unit_quote(self.text, context=self.context, is_row=self.is_row)
        forms = [full_stop(quoted)]
        if any(is_identifier(term) for term in content_terms(self.section)):
            forms.append(full_stop(f"{self.section} — {quoted}"))
        return tuple(forms)

    @property
    def embedded_texts(self) -> tuple[str, ...]:
        """Every text of this unit whose vector is stored ahead of questions: what the
        reranker and the answerer score (``semantic_text``) and what the citation check
        then embeds (``quoted_texts``)."""
        return tuple(dict.fromkeys((self.semantic_text, *self.quoted_texts)))


@lru_cache(maxsize=TERMS_CACHE_SIZE)
def text_terms(text: str) -> frozenset[str]:
    """The content terms of a unit's or a chunk's text (kb.search.terms), remembered: the
    reranker, the answerer and the citation check read the same texts again and again."""
    return frozenset(content_terms(text))


def is_identifier(term: str) -> bool:
    """A term holding a digit: a number, a version, an error code."""
    return any(char.isdigit() for char in term)


def full_stop(text: str) -> str:
    """``text`` ending as a sentence does, so that a quote reads (and splits) as one."""
    return text if text.endswith(_FULL_STOPS) else f"{text}."


def unit_quote(text: str, *, context: str, is_row: bool) -> str:
    """A unit as it reads in an answer: whitespace (column gaps too) collapsed, and a
    table row with its columns named (labelled_row)."""
    if is_row and context:
        return labelled_row(text, context)
    return " ".join(text.split())


def labelled_row(row: str, header: str) -> str:
    """A table row with its columns named: "Annual billing | $190 / year | $590 / year"
    under "| Starter | Growth" reads "Annual billing — Starter: $190 / year; Growth:
    $590 / year". Rows whose cells do not line up with the header's stay as they are."""
    cells = _cells(row)
    names = _cells(header)
    if len(names) == len(cells) - 1:
        names = ["", *names]  # the header has no name for the row-label column
    if len(names) != len(cells) or len(cells) < 2:
        return " ".join(row.split())
    label, *values = cells
    pairs = [
        f"{name}: {value}" if name else value for name, value in zip(names[1:], values, strict=True)
    ]
    # "…in this workspace.; How to fix it: …" reads badly: no full stop before a semicolon.
    return f"{label} — " + "; ".join([pair.rstrip(".") for pair in pairs[:-1]] + pairs[-1:])


def _cells(line: str) -> list[str]:
    parts = line.split("|") if "|" in line else re.split(r"\s{2,}", line)
    cells = [" ".join(part.split()) for part in parts]
    if cells and not cells[0] and line.lstrip().startswith("|"):
        cells = cells[1:]
    if cells and not cells[-1] and line.rstrip().endswith("|"):
        cells = cells[:-1]
    return cells


def chunk_units(text: str, *, title: str, heading_path: str) -> list[Unit]:
    """The quotable units of one chunk (or passage), in reading order, headings left out.

    Depends on the chunk alone, so what ingestion cuts (and embeds) is exactly what the
    answerer later quotes.
    """
    return list(_chunk_units(text, title, heading_path))


@lru_cache(maxsize=UNITS_CACHE_SIZE)
def _chunk_units(text: str, title: str, heading_path: str) -> tuple[Unit, ...]:
    headings = {_squash(part) for part in heading_path.split(">")} | {_squash(title)}
    section = heading_path.rsplit(">", 1)[-1].strip() or title.strip()
    units: list[Unit] = []
    header = ""  # the current table's header row
    lead_in = ""  # the sentence ending in ":" that introduced the current list
    lines = list(_unit_texts(text))
    for index, text in enumerate(lines):
        is_row = _is_table_row(text)
        if is_row and not header and _is_table_header(text, lines, index):
            header = text
            continue
        if not is_row:
            header = ""
        if _is_heading(text, headings, followed=index + 1 < len(lines)):
            lead_in = ""
            continue
        marker = _LIST_MARKER.match(text)
        is_item = marker is not None
        context = header if is_row else (lead_in if is_item else "")
        quote = text[marker.end() :] if marker else text  # "2. Enter a name" -> "Enter a name"
        # A lead-in ("We accept:") only announces the list that answers; it is context.
        # A sentence aimed at an assistant (a poisoned document) is never an answer.
        if (
            _is_answer_sized(quote, is_row)
            and not text.endswith(":")
            and not sentence_is_instruction(quote)
        ):
            units.append(Unit(len(units), quote, context, is_row, section))
        if text.endswith(":"):
            lead_in = text
        elif not is_item:
            lead_in = ""
    return tuple(units)


def _unit_texts(text: str) -> list[str]:
    """Sentences, with preformatted blocks (several lines in one span) cut into lines.

    Parsers join wrapped prose into one line, so a line break left inside a sentence
    span means layout: a plain-text table, a key/value block, code. A line starting
    in lower case after a line without column gaps is still wrapped prose, though,
    and is joined back. A table row is one line whatever sentences its cells hold.
    """
    units: list[str] = []
    previous_end = -1
    for start, end in sentence_spans(text):
        span = text[start:end]
        same_line = previous_end >= 0 and "\n" not in text[previous_end:start]
        previous_end = end
        if same_line and units and "|" in units[-1] and "\n" not in span:
            units[-1] = f"{units[-1]} {span}"
            continue
        if "\n" not in span:
            units.append(span)
            continue
        lines: list[str] = []
        for raw in span.split("\n"):
            line = raw.strip()
            if not line or _TABLE_SEPARATOR.match(line):
                continue
            if lines and line[0].islower() and not _COLUMN_GAP.search(lines[-1]):
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        units.extend(lines)
    return [" ".join(unit.split()) if not _COLUMN_GAP.search(unit) else unit for unit in units]


def _is_table_row(text: str) -> bool:
    return "|" in text.strip("|") or bool(_COLUMN_GAP.search(text))


def _is_table_header(text: str, lines: list[str], index: int) -> bool:
    """A table's first row names its columns: no digits in it, and a row follows."""
    following = lines[index + 1] if index + 1 < len(lines) else ""
    return not any(char.isdigit() for char in text) and _is_table_row(following)


def _is_heading(text: str, headings: set[str], *, followed: bool) -> bool:
    """A line that only names a section: one of the passage's headings, or a short
    unpunctuated line with more text after it ("Free trial", "RATE LIMITS")."""
    if _squash(text) in headings:
        return True
    words = text.split()
    return (
        followed
        and len(words) <= MAX_HEADING_WORDS
        and not text.endswith(_TERMINAL)
        and not any(char.isdigit() for char in text)
        and "|" not in text
    )


def _is_answer_sized(text: str, is_row: bool) -> bool:
    if is_row:
        return len(tokenize(text)) >= 2
    content = content_terms(text)
    return len(content) >= MIN_CONTENT_WORDS or (
        len(content) >= 1 and any(char.isdigit() for char in text)
    )


def _squash(text: str) -> str:
    return " ".join(tokenize(text))
