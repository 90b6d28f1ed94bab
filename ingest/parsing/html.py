"""HTML (.html, .htm), read with lxml's libxml2 HTML parser.

libxml2 repairs any markup (unclosed tags, stray end tags, bad nesting) into a tree and
decodes entities; it never fetches anything (``no_network``, and the HTML parser loads no
DTD) and never runs anything. The tree is walked once with ``iterwalk``, without recursion,
so deeply nested hostile markup cannot exhaust the stack, and text is gathered in lists
joined once per block, so a page costs time linear in its size.

What is dropped: ``<head>`` (the ``<title>`` is read separately), scripts, styles,
``<noscript>``, ``<template>``, embedded SVG/MathML/objects, form controls, and hidden
elements (``hidden``, ``aria-hidden="true"``, ``display:none``). Navigation is dropped
too — ``<nav>``, ``<footer>``, ``role="navigation"``/``"contentinfo"``, and DocBook's
``navheader``/``navfooter`` (the PostgreSQL manual's Prev/Up/Next bars) — because menus
and copyright lines repeat on every page and crowd real content out of search results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar

from lxml import etree  # type: ignore[import-untyped]

from ingest.parsing.base import BlockKind, ParsedDocument, ParseError, ParseLimits
from ingest.parsing.decoding import declared_html_charset, decode_text
from ingest.parsing.text import BlockCollector, normalise_space

DROPPED_TAGS = frozenset(
    {
        "head", "script", "style", "noscript", "template", "nav", "footer", "svg", "math",
        "iframe", "object", "embed", "applet", "canvas", "audio", "video", "map", "select",
        "button", "textarea", "datalist", "frameset",
    }
)  # fmt: skip
_DROPPED_ROLES = frozenset({"navigation", "contentinfo"})
_DROPPED_CLASSES = frozenset({"navheader", "navfooter"})
_MAX_DEPTH = 2048  # libxml2's element nesting limit with huge_tree
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LISTS = frozenset({"ul", "ol", "menu", "dir"})
_CELLS = frozenset({"td", "th"})
# Elements that end the text before them. Anything else (span, a, code, b, …) is inline.
_BLOCKS = frozenset(
    {
        "html", "body", "p", "div", "section", "article", "main", "header", "aside",
        "address", "blockquote", "figure", "figcaption", "details", "summary", "dialog",
        "dl", "dt", "dd", "fieldset", "legend", "form", "hgroup", "center", "hr",
        "table", "caption", "thead", "tbody", "tfoot", "colgroup", "noframes",
        "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "menu", "dir", "li", "pre",
        "tr", "td", "th",
    }
)  # fmt: skip


class HtmlParser:
    file_type: ClassVar[str] = "html"

    def parse(self, stream: BinaryIO, *, limits: ParseLimits) -> ParsedDocument:
        data = stream.read()
        decoded = decode_text(data, declared=declared_html_charset(data))
        collector = BlockCollector(limits)
        root, warnings = _parse_markup(decoded.text)
        title = None
        if root is not None:
            title = _title(root)
            walker = _HtmlWalker(collector)
            walker.walk(root)
            title = title or walker.first_h1
        return collector.document(title=title, warnings=decoded.warnings + warnings)


def read_html_fragment(markup: str, collector: BlockCollector) -> None:
    """Adds the blocks of a piece of HTML (raw HTML inside Markdown) to ``collector``."""
    root, _ = _parse_markup(markup)
    if root is not None:
        _HtmlWalker(collector).walk(root)


def _parse_markup(markup: str) -> tuple[Any, list[str]]:
    """The root element (None when there is no markup at all) and any warnings."""
    # The text is already decoded; UTF-8 bytes plus a fixed encoding make libxml2 ignore
    # whatever <meta charset> or <?xml encoding?> the page declares. huge_tree raises the
    # nesting limit from 256 to 2,048 levels (old pages with unclosed <font> tags get
    # deep); input size is bounded by the upload limit, so nothing else grows with it.
    parser = etree.HTMLParser(
        encoding="utf-8",
        remove_comments=True,
        remove_pis=True,
        no_network=True,
        default_doctype=False,
        collect_ids=False,
        huge_tree=True,
    )
    try:
        root = etree.fromstring(markup.encode("utf-8", errors="replace"), parser)
    except (etree.ParserError, etree.XMLSyntaxError) as exc:
        raise ParseError("the HTML cannot be read, even after repairing its markup") from exc
    warnings = []
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        warnings.append(
            f"the HTML is nested more than {_MAX_DEPTH:,} levels deep; "
            f"the text past that point was skipped"
        )
    return root, warnings


def _title(root: Any) -> str | None:
    for element in root.iter("title"):
        return normalise_space("".join(element.itertext())) or None
    return None


def _is_dropped(element: Any) -> bool:
    tag = element.tag
    if not isinstance(tag, str):  # comments, processing instructions, entities
        return True
    if tag in DROPPED_TAGS:
        return True
    attributes = element.attrib
    if not attributes:
        return False
    if "hidden" in attributes or attributes.get("aria-hidden") == "true":
        return True
    if attributes.get("role") in _DROPPED_ROLES:
        return True
    classes = attributes.get("class")
    if classes and not _DROPPED_CLASSES.isdisjoint(classes.split()):
        return True
    style = attributes.get("style")
    return bool(style) and "display:none" in style.replace(" ", "").lower()


@dataclass
class _Owner:
    """An open heading or list item: the kind of block its text becomes."""

    kind: BlockKind
    level: int
    prefix: str = ""  # "3. " in an ordered list, written before the item's first text


class _HtmlWalker:
    def __init__(self, collector: BlockCollector) -> None:
        self._collector = collector
        self._parts: list[str] = []
        self._owners: list[_Owner] = []
        self._lists: list[int | None] = []  # per open list: next number, None if unordered
        self._pre_depth = 0
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._cell_element: Any = None
        self.first_h1: str | None = None

    def walk(self, root: Any) -> None:
        walker = etree.iterwalk(root, events=("start", "end"))
        skipped: Any = None
        for event, element in walker:
            if event == "start":
                if _is_dropped(element):
                    walker.skip_subtree()  # its "end" event still comes, for the tail
                    skipped = element
                    continue
                self._start(element)
                if element.text:
                    self._add_text(element.text)
            else:
                if element is skipped:
                    skipped = None
                else:
                    self._end(element)
                if element.tail:
                    self._add_text(element.tail)
        self._flush()
        self._end_row()

    def _add_text(self, text: str) -> None:
        (self._cell if self._cell is not None else self._parts).append(text)

    def _start(self, element: Any) -> None:
        tag: str = element.tag
        if self._cell is not None:  # a cell is one line of text, whatever it contains
            if tag in _BLOCKS or tag == "br":
                self._cell.append(" ")
        elif self._pre_depth:
            if tag == "br":
                self._parts.append("\n")
            elif tag == "pre":
                self._pre_depth += 1
        elif tag == "br":
            self._parts.append(" ")
        elif tag in _HEADINGS:
            self._flush()
            self._owners.append(_Owner(BlockKind.HEADING, _HEADINGS[tag]))
        elif tag == "li":
            self._flush()
            self._owners.append(_Owner(BlockKind.LIST_ITEM, max(len(self._lists), 1)))
            self._owners[-1].prefix = self._next_number(element)
        elif tag in _LISTS:
            self._flush()
            self._lists.append(_start_number(element) if tag == "ol" else None)
        elif tag == "pre":
            self._flush()
            self._pre_depth = 1
        elif tag == "tr":
            self._flush()
            self._end_row()
            self._row = []
        elif tag in _CELLS:
            if self._row is None:  # a cell outside any row: malformed, give it one
                self._flush()
                self._row = []
            self._cell, self._cell_element = [], element
        elif tag in _BLOCKS:
            self._soft_break()

    def _end(self, element: Any) -> None:
        tag: str = element.tag
        if self._cell is not None:
            if element is self._cell_element:
                if self._row is not None:  # always: a row is opened with the cell
                    self._row.append(normalise_space("".join(self._cell)))
                self._cell, self._cell_element = None, None
            elif tag in _BLOCKS:
                self._cell.append(" ")
        elif self._pre_depth:
            if tag == "pre":
                self._pre_depth -= 1
                if not self._pre_depth:
                    self._flush_code()
        elif tag in _HEADINGS or tag == "li":
            self._flush()
            if self._owners:
                self._owners.pop()
        elif tag in _LISTS:
            self._flush()
            if self._lists:
                self._lists.pop()
        elif tag in ("tr", "table"):
            self._flush()
            self._end_row()
        elif tag in _BLOCKS:
            self._soft_break()

    def _soft_break(self) -> None:
        """A <p> or <div> boundary: a new block, except inside a heading or list item."""
        if self._owners:
            self._parts.append(" ")
        else:
            self._flush()

    def _next_number(self, element: Any) -> str:
        if not self._lists or self._lists[-1] is None:
            return ""
        number = _int_attribute(element, "value", self._lists[-1])
        self._lists[-1] = number + 1
        return f"{number}. "

    def _flush(self) -> None:
        if not self._parts:
            return
        text = "".join(self._parts)
        self._parts.clear()
        if not self._owners:
            self._collector.add(BlockKind.PARAGRAPH, text)
            return
        owner = self._owners[-1]
        if owner.prefix and not text.isspace():
            text, owner.prefix = owner.prefix + text, ""
        self._collector.add(owner.kind, text, level=owner.level)
        if owner.kind is BlockKind.HEADING and owner.level == 1 and self.first_h1 is None:
            self.first_h1 = normalise_space(text) or None

    def _flush_code(self) -> None:
        text = "".join(self._parts)
        self._parts.clear()
        self._collector.add(BlockKind.CODE, text)

    def _end_row(self) -> None:
        if self._row is not None and any(self._row):
            self._collector.add(BlockKind.TABLE_ROW, " | ".join(self._row))
        self._row = None


def _start_number(element: Any) -> int:
    return _int_attribute(element, "start", 1)


def _int_attribute(element: Any, name: str, default: int) -> int:
    value = element.get(name, "")
    try:
        return int(value) if len(value) < 10 else default
    except ValueError:
        return default
