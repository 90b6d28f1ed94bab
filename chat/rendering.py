"""Answer text → safe HTML: Markdown, sanitised, with citation chips.

Model output is untrusted. Markdown is rendered with raw HTML disabled (tags
come out as text) and unsafe link schemes refused, then nh3 (ammonia) keeps only
a small allow-list of tags, attributes and URL schemes. Citation chips are
added after sanitising, from our own data only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
                '<span class="unverified" title="{}">not verified</span>',
                "No cited passage supports this sentence.",
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


def answer_html(text: str, links: Mapping[int, CitationLink]) -> SafeString:
    """The answer as HTML; ``[n]`` markers become chips linking to their passages."""
    html = markdown_safe(text)
    return mark_safe(_MARKERS.sub(lambda m: _chip(m.group(1), links), html))  # noqa: S308 — sanitised above


def streamed_text_html(text: str) -> str:
    """A piece of an answer still being written: shown as plain text, escaped."""
    return str(escape(text))
