"""Answer text → safe HTML: Markdown, sanitised, with citation chips and marked sentences.

Model output is untrusted. The pipeline already removed HTML from it
(chat.answering.markup); here, Markdown is rendered with raw HTML disabled anyway (tags
come out as text) and unsafe link schemes refused, then nh3 (ammonia) keeps only
a small allow-list of tags, attributes and URL schemes. Citation chips are
added after sanitising, from our own data only.

Sentences the citation check could not support are dimmed, with a "not found in the
sources" note where the text says ``[?]``. Their spans (from ``Message.sentences``) are
marked in the Markdown with two private-use characters before rendering, so the marks
follow the text through Markdown's own parsing; the characters then become
``<span class="unsupported">`` and a second nh3 pass keeps the nesting well formed when a
sentence crosses an inline element. Classes only: the CSP allows no inline style.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import nh3
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "del",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
_MARKERS = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*|\?)\]")
# Marks of an unsupported sentence's start and end, private-use characters no answer keeps.
_OPEN, _CLOSE = "\ue000", "\ue001"
# Block syntax a sentence may start with, which the opening mark must follow.
_BLOCK_PREFIX = re.compile(r"(?:[ \t]*(?:[-*+•]|\d{1,9}[.)]|#{1,6}|>)[ \t]+)*")
UNSUPPORTED_NOTE = "not found in the sources"


@dataclass(frozen=True)
class CitationLink:
    url: str
    title: str


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # "js-default": CommonMark without raw HTML, with links validated (no javascript:).
    return MarkdownIt("js-default", {"linkify": False, "typographer": False}).enable("table")


def markdown_safe(text: str) -> str:
    html = _markdown().render(text)
    # Headings in answers render one level down: an answer is not a page.
    html = re.sub(r"<(/?)h[12]>", r"<\1h3>", html)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


def _chip(numbers: str, links: Mapping[int, CitationLink]) -> str:
    if numbers == "?":
        return str(
            format_html(
                '<span class="unsupported-note" title="{}">'
                '<span class="sr-only">This sentence was </span>{}</span>',
                "No passage given to the answer supports this sentence.",
                UNSUPPORTED_NOTE,
            )
        )
    chips = []
    for raw in re.split(r"\s*[,;]\s*", numbers):
        link = links.get(int(raw))
        if link is None:
            continue  # a marker the check dropped or that names no passage
        chips.append(
            str(
                format_html(
                    '<a class="cite" href="{}" title="{}" data-citation="{}">{}</a>',
                    link.url,
                    link.title,
                    raw,
                    raw,
                )  # fmt: skip
            )
        )
    return "".join(chips)


def _with_marks(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with each span (of an unsupported sentence) between the two marks."""
    text = text.replace(_OPEN, "").replace(_CLOSE, "")
    edits: list[tuple[int, str]] = []
    for start, end in sorted(spans):
        if not 0 <= start < end <= len(text):
            continue  # a span from another version of the text: mark nothing
        line_start = start == 0 or text[start - 1] == "\n"
        prefix = _BLOCK_PREFIX.match(text, start) if line_start else None
        edits += [(prefix.end() if prefix else start, _OPEN), (end, _CLOSE)]
    for position, mark in sorted(edits, reverse=True):
        text = text[:position] + mark + text[position:]
    return text


def answer_html(
    text: str, links: Mapping[int, CitationLink], unsupported: Iterable[tuple[int, int]] = ()
) -> SafeString:
    """The answer as HTML; ``[n]`` markers become chips linking to their passages, and the
    ``unsupported`` spans of ``text`` (sentences the check could not support) are dimmed."""
    spans = list(unsupported)
    html = markdown_safe(_with_marks(text, spans) if spans else text)
    if spans:
        html = html.replace(_OPEN, '<span class="unsupported">').replace(_CLOSE, "</span>")
        html = nh3.clean(
            html,
            tags=ALLOWED_TAGS | {"span"},
            attributes=ALLOWED_ATTRIBUTES,
            allowed_classes={"span": {"unsupported"}},
            url_schemes=URL_SCHEMES,
            link_rel="noopener noreferrer nofollow",
        )
    return mark_safe(_MARKERS.sub(lambda m: _chip(m.group(1), links), html))  # noqa: S308 — sanitised above


def streamed_text_html(text: str) -> str:
    """A piece of an answer still being written: shown as plain text, escaped."""
    return str(escape(text))
