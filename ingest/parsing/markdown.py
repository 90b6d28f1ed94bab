"""Markdown (.md), read with markdown-it-py's CommonMark parser plus GitHub pipe tables.

Only markdown-it's token stream is used, never its HTML renderer: blocks come straight
from the tokens, inline markup is reduced to its text (links to their text, emphasis
markers dropped, images dropped), and raw HTML is read with the HTML parser's rules, so a
``<script>`` in a Markdown file is dropped exactly as in an HTML file. A YAML front matter
block is skipped; its ``title:`` is the fallback title when there is no H1.
"""

from __future__ import annotations

import re
from typing import BinaryIO, ClassVar

from markdown_it import MarkdownIt
from markdown_it.token import Token

from ingest.parsing.base import BlockKind, ParsedDocument, ParseLimits
from ingest.parsing.decoding import decode_text
from ingest.parsing.html import DROPPED_TAGS, read_html_fragment
from ingest.parsing.text import BlockCollector

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.{0,20000}?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_HTML_TAG = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9-]*)")


def _markdown_it() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


_MARKDOWN = _markdown_it()  # holds only rules; each parse() call keeps its own state


class MarkdownParser:
    file_type: ClassVar[str] = "md"

    def parse(self, stream: BinaryIO, *, limits: ParseLimits) -> ParsedDocument:
        decoded = decode_text(stream.read())
        text, front_matter_title = _split_front_matter(decoded.text)
        collector = BlockCollector(limits)
        _TokenReader(collector).read(_MARKDOWN.parse(text))
        title = collector.first_heading(1) or front_matter_title
        return collector.document(title=title, warnings=decoded.warnings)


def _split_front_matter(text: str) -> tuple[str, str | None]:
    match = _FRONT_MATTER.match(text)
    if match is None:
        return text, None
    title = _FRONT_MATTER_TITLE.search(match.group(1))
    return text[match.end() :], title.group(1).strip("\"'") if title else None


class _ListItem:
    def __init__(self, level: int, prefix: str) -> None:
        self.level = level
        self.prefix = prefix  # "3. " for ordered lists, written before the first text only
        self.parts: list[str] = []


class _TokenReader:
    """Walks markdown-it's flat token stream, keeping the list and table state it needs."""

    def __init__(self, collector: BlockCollector) -> None:
        self._collector = collector
        self._items: list[_ListItem] = []
        self._list_depth = 0
        self._heading_level = 0
        self._row: list[str] | None = None

    def read(self, tokens: list[Token]) -> None:
        for token in tokens:
            self._token(token)

    def _token(self, token: Token) -> None:
        kind = token.type
        if kind == "inline":
            self._inline(token)
        elif kind == "heading_open":
            self._flush_item()
            self._heading_level = int(token.tag[1:])
        elif kind == "heading_close":
            self._heading_level = 0
        elif kind in ("bullet_list_open", "ordered_list_open"):
            self._flush_item()
            self._list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self._list_depth -= 1
        elif kind == "list_item_open":
            prefix = f"{token.info}{token.markup} " if token.info else ""
            self._items.append(_ListItem(max(self._list_depth, 1), prefix))
        elif kind == "list_item_close":
            self._flush_item()
            if self._items:
                self._items.pop()
        elif kind == "tr_open":
            self._flush_item()
            self._row = []
        elif kind == "tr_close":
            if self._row is not None and any(self._row):
                self._collector.add(BlockKind.TABLE_ROW, " | ".join(self._row))
            self._row = None
        elif kind in ("fence", "code_block"):
            self._flush_item()
            self._collector.add(BlockKind.CODE, token.content)
        elif kind == "html_block":
            self._flush_item()
            read_html_fragment(token.content, self._collector)

    def _inline(self, token: Token) -> None:
        text = _inline_text(token)
        if self._row is not None:
            self._row.append(" ".join(text.split()))
        elif self._heading_level:
            self._collector.add(BlockKind.HEADING, text, level=self._heading_level)
        elif self._items:
            self._items[-1].parts.append(text)
        else:
            self._collector.add(BlockKind.PARAGRAPH, text)

    def _flush_item(self) -> None:
        """Writes the open list item's text so far, before whatever is nested in it."""
        if not self._items or not self._items[-1].parts:
            return
        item = self._items[-1]
        self._collector.add(
            BlockKind.LIST_ITEM, item.prefix + " ".join(item.parts), level=item.level
        )
        item.parts.clear()
        item.prefix = ""


def _inline_text(token: Token) -> str:
    """The readable text of an inline token: markup dropped, raw HTML tags dropped."""
    parts: list[str] = []
    hidden_by: str | None = None  # inside <script>…</script> written inline
    for child in token.children or []:
        if child.type == "html_inline":
            match = _HTML_TAG.match(child.content)
            if match is not None:
                closing, tag = match.group(1) == "/", match.group(2).lower()
                if tag == "br":
                    parts.append(" ")
                elif hidden_by is None and not closing and tag in DROPPED_TAGS:
                    hidden_by = tag
                elif closing and tag == hidden_by:
                    hidden_by = None
            continue
        if hidden_by is not None:
            continue
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)
