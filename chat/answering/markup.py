"""Answer text that is safe to render anywhere: Markdown that carries no HTML.

Clients render an answer's Markdown in different ways. The chat renders it with raw
HTML off and sanitises the result; another client may use a Markdown library with raw
HTML on (most libraries' default), or put the text into a page as it is. A passage can
hold markup (a web page, a hostile document) and a model repeats what it reads, so the
answer itself carries none:

- HTML tags, comments, declarations, CDATA and processing instructions are dropped
  wherever they stand, code included (a page that inserts the text as it is would build
  them there too); the text between tags stays, and ``<br>`` becomes a space.
- An autolink (``<https://…>``, ``<mailto:…>``, ``<name@example.com>``) becomes the bare
  address: the bracketed form is an element, with attributes, to such a page.
  (Which URLs may stay at all is chat.answering.links's business; it runs after this.)
- A ``<`` that would open markup (``<`` then a letter, ``/``, ``!`` or ``?``) but never
  closes within MAX_TAG_CHARS gets a space after it (``< b``), which no HTML or Markdown
  parser reads as markup; the text around it stays as written.

Why drop rather than escape: ``&lt;`` is inert in HTML, but Markdown renderers show it
literally inside code, the chat's streamed words would show the entity, and an escaped
``<svg onload=…>`` still reads as one. After this function no ``<`` in the text is
followed by a letter, ``/``, ``!`` or ``?``: by construction, not by a list of tags.

``MarkupGuard`` applies the same to a stream: a ``<`` whose tag is not finished yet is
held back until it is (or until MAX_TAG_CHARS show it never will be), so no part of a
tag cut across stream chunks ever reaches the reader.
"""

from __future__ import annotations

import re

MAX_TAG_CHARS = 500  # a "tag" longer than this is prose with a stray "<", not markup
_OPENS_MARKUP = re.compile(r"<(?=[A-Za-z/!?])")
_AUTOLINK = re.compile(
    r"<((?:https?|ftp)://[^\s<>]*|mailto:[^\s<>]+|[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)>",
    re.IGNORECASE,
)
_ATTRIBUTES = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_MARKUP = re.compile(
    r"<!\[CDATA\[.*?\]\]>"
    rf"|<[A-Za-z][^\s/>]*{_ATTRIBUTES}>"  # a start tag, quoted ">" in attributes included
    r"|</[^>]*>"  # an end tag (or what HTML reads as a bogus comment)
    r"|<[!?][^>]*>",  # a declaration or a processing instruction
    re.DOTALL,
)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_LINE_BREAK_TAG = re.compile(r"<br\b", re.IGNORECASE)


def _replacement(match: re.Match[str]) -> str:
    if (autolink := _AUTOLINK.fullmatch(match.group())) is not None:
        return autolink.group(1)
    return " " if _LINE_BREAK_TAG.match(match.group()) else ""


def _markup_at(text: str, position: int) -> re.Match[str] | None:
    """The markup starting at ``position`` (a "<"), if it closes within MAX_TAG_CHARS."""
    end = min(len(text), position + MAX_TAG_CHARS)
    if text.startswith("<!--", position):  # a comment ends at "-->" only
        return _COMMENT.match(text, position, end)
    return _MARKUP.match(text, position, end)


def _safe(text: str, *, final: bool) -> tuple[str, int]:
    """(``text`` made safe up to where an unfinished tag starts, that position).

    With ``final`` nothing is left unfinished: a "<" that does not close is broken up.
    """
    out: list[str] = []
    position = 0
    for opener in _OPENS_MARKUP.finditer(text):
        start = opener.start()
        if start < position:
            continue  # inside markup already dropped
        out.append(text[position:start])
        markup = _markup_at(text, start)
        if markup is not None:
            out.append(_replacement(markup))
            position = markup.end()
        elif not final and len(text) - start < MAX_TAG_CHARS:
            return "".join(out), start  # it may still close: wait for more text
        else:
            out.append("< ")
            position = start + 1
    rest = text[position:]
    if not final and rest.endswith("<"):  # what follows decides
        out.append(rest[:-1])
        return "".join(out), len(text) - 1
    out.append(rest)
    return "".join(out), len(text)


def markdown_text_safe(text: str) -> str:
    """``text`` without HTML markup (see the module docstring); Markdown stays Markdown."""
    return _safe(text.replace("\x00", ""), final=True)[0]


class MarkupGuard:
    """``markdown_text_safe`` for a stream: ``feed`` returns what can be shown now,
    ``flush`` the rest at the end."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        pending = self._held + text.replace("\x00", "")
        shown, cut = _safe(pending, final=False)
        self._held = pending[cut:]
        return shown

    def flush(self) -> str:
        rest, self._held = self._held, ""
        return markdown_text_safe(rest)
