"""Rule-based sentence, line and word splitting that returns character spans.

The chunker may only cut a block between sentences (and between words when one
sentence alone is too long), and chunk text must be an exact slice of the
document, so every splitter here returns ``(start, end)`` spans into the text it
was given rather than new strings. Spans are stripped (no leading or trailing
whitespace), in order, never overlap, and together cover every non-whitespace
character of the text.

Why rules and not a model: no downloads (NLTK's punkt data is a download), no
per-document latency worth mentioning, and predictable behaviour on the kinds of
text a knowledge base holds — product documentation with abbreviations, version
numbers, file names, URLs and numbered steps. The rules lean towards *not*
splitting: a missed boundary only makes a sentence longer (and a sentence longer
than the chunk budget is still cut on words), while a wrong boundary cuts a
thought in half.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable

Span = tuple[int, int]

# Words (without their final period) after which a period does not end a sentence.
# Lower-case; internal periods kept ("e.g"), so "E.g." and "e.g." both match.
ABBREVIATIONS = frozenset(
    {
        # English
        "e.g", "eg", "i.e", "ie", "etc", "vs", "cf", "al", "approx", "ca", "incl", "excl",
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "gen", "gov", "sen",
        "inc", "ltd", "co", "corp", "llc", "plc", "dept", "misc", "resp", "esp",
        "u.s", "u.k", "u.s.a", "e.u", "a.m", "p.m", "ph.d", "b.sc", "m.sc",
        # German
        "z.b", "zb", "d.h", "dh", "u.a", "usw", "bzw", "ggf", "evtl", "vgl", "sog", "inkl",
        "zzgl", "str", "hr", "fr", "hrsg", "u.u", "o.ä", "s.o", "s.u", "m.e", "bspw", "ggü",
        # French
        "mme", "mlle", "mm", "env", "p.ex", "c.-à-d", "av",
    }
)  # fmt: skip

# Abbreviations that are also ordinary lower-case words ("sat", "sun", "may"): only
# written with a capital ("Sat.", "Dec.") are they taken as abbreviations.
CAPITALIZED_ABBREVIATIONS = frozenset(
    {
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun", "est",
    }
)  # fmt: skip

# Abbreviations that are usually followed by a number ("No. 5", "Fig. 3", "pp. 12") but
# may also end a sentence ("The answer is No."): followed by a non-digit, they do.
# (Single letters such as "p." are initials and never end one.)
NUMBER_ABBREVIATIONS = frozenset(
    {"no", "nr", "nos", "fig", "figs", "vol", "vols", "pp", "art", "sec", "ch", "chap",
     "eq", "ref", "op", "ex", "abs", "bd"}
)  # fmt: skip

# Month names after an ordinal such as the German "3. Oktober" or the French "1. mars".
MONTHS = frozenset(
    {
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december",
        "januar", "jänner", "februar", "märz", "mai", "juni", "juli", "oktober", "dezember",
        "janvier", "février", "mars", "avril", "juin", "juillet", "août", "septembre",
        "octobre", "novembre", "décembre",
    }
)  # fmt: skip

# Characters a new sentence may start with besides an upper-case letter or a digit.
_SENTENCE_OPENERS = frozenset("\"'“‘„‚«‹([{¿¡*_`•")

# A western terminator cluster ("." "?!" "..." "…"), closing quotes/brackets (French
# puts a space before », « Bonjour ! »), whitespace.
_WESTERN_END = re.compile(r"([.!?…‼⁇⁈⁉]+)((?:[ \u00a0\u202f]?[»›])?[\"'”’»›)\]]*)(\s+)(?=\S)")
# CJK full-width terminators end a sentence with or without whitespace after them.
_CJK_END = re.compile(r"([。！？｡]+)([」』”’）)\]】〕》〉]*)(\s*)(?=\S)")
# A blank line, or a line break before a list marker, a table line or a heading marker.
_LINE_BREAK = re.compile(
    r"[ \t]*\n(?:[ \t]*\n)+\s*"  # blank line(s)
    r"|[ \t]*\n[ \t]*(?=(?:[-*+•◦▪‣–—]|\d{1,3}[.)]|[A-Za-z][.)]|\(\w{1,3}\))[ \t]|\||#{1,6}[ \t])"
)
_WORD = re.compile(r"\S+")
_LINE = re.compile(r"[^\n]+")


def sentence_spans(text: str) -> list[Span]:
    """Split prose into sentences; return their stripped ``(start, end)`` spans.

    A sentence ends at ``. ! ? …`` (with any closing quotes or brackets) followed
    by whitespace and something that can start a sentence (an upper-case or
    caseless letter, a digit, an opening quote or bracket), at a CJK full stop
    (``。！？``), at a blank line, and at a line break before a list item. It does
    not end after a known abbreviation (``e.g.``, ``Dr.``, ``z.B.``), an initial
    (``J. R. R.``), a list number at the start of a line (``1.``), a day before a
    month (``3. Oktober``), or an ellipsis inside an open quotation. Decimals,
    version numbers, URLs, e-mail addresses and file names never split because
    their periods are not followed by whitespace.
    """
    # (end of one sentence, start of the next)
    boundaries = [(match.start(), match.end()) for match in _LINE_BREAK.finditer(text)]
    line_starts = [start for _, start in boundaries]
    sentence_start = 0  # of the sentence the current terminator may end
    for match in _WESTERN_END.finditer(text):
        if index := bisect_right(line_starts, match.start()):
            sentence_start = max(sentence_start, line_starts[index - 1])
        if _ends_sentence(text, match, sentence_start):
            boundaries.append((match.end(2), match.end()))
            sentence_start = match.end()
    boundaries.extend((match.end(2), match.end()) for match in _CJK_END.finditer(text))
    return _spans_between(text, boundaries)


def line_spans(text: str) -> list[Span]:
    """Split text into its non-blank lines (for code, where sentences mean nothing)."""
    return _stripped(text, ((m.start(), m.end()) for m in _LINE.finditer(text)))


def word_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Whitespace-separated words of ``text[start:end]``, as spans into ``text``."""
    stop = len(text) if end is None else end
    return [(m.start(), m.end()) for m in _WORD.finditer(text, start, stop)]


def _ends_sentence(text: str, match: re.Match[str], sentence_start: int) -> bool:
    terminator = match.group(1)
    following = text[match.end()]
    if not _can_start_sentence(following):
        return False
    if "…" in terminator or ".." in terminator:
        # "I was... Well." inside quotes is one utterance. Quotes are looked for in the
        # last 1,000 characters only, so a run-on text full of ellipses stays linear.
        start = max(sentence_start, match.start() - 1_000)
        return not _inside_quotation(text, start, match.start())
    if terminator != ".":
        return True  # "?", "!", "?!" and the like
    word = _word_before(text, match.start())
    if not word:
        return True
    lowered = word.lower()
    if lowered in ABBREVIATIONS:
        return False
    if lowered in CAPITALIZED_ABBREVIATIONS and word[0].isupper():
        return False
    if lowered in NUMBER_ABBREVIATIONS:
        return not following.isdigit()
    if _is_initialism(word):  # "J." "U.S." "e.g" spelled unusually, "z.B"
        return False
    if word.isdigit():
        if _starts_line(text, match.start() - len(word)):
            return False  # a numbered list item: "1. Sign in"
        if len(word) <= 2 and _next_word(text, match.end()).lower() in MONTHS:
            return False  # "am 3. Oktober"
    return True


def _can_start_sentence(char: str) -> bool:
    # isalpha and not islower: upper-case letters and caseless scripts (CJK, Arabic, ...).
    return (char.isalpha() and not char.islower()) or char.isdigit() or char in _SENTENCE_OPENERS


def _word_before(text: str, end: int) -> str:
    """The word a terminator ends, without leading opening punctuation: "(e.g." -> "e.g"."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lstrip("\"'“‘„«‹([{")


def _next_word(text: str, start: int) -> str:
    match = _WORD.match(text, start)
    return match.group().strip(".,;:!?") if match else ""


def _is_initialism(word: str) -> bool:
    """A single letter ("J", "M") or letters joined by periods ("U.S", "z.B", "i.e")."""
    parts = word.split(".")
    return all(len(part) == 1 and part.isalpha() for part in parts)


def _starts_line(text: str, position: int) -> bool:
    """Whether only spaces or tabs stand between ``position`` and the start of its line."""
    while position > 0 and text[position - 1] in " \t":
        position -= 1
    return position == 0 or text[position - 1] == "\n"


def _inside_quotation(text: str, start: int, end: int) -> bool:
    segment = text[start:end]
    if segment.count('"') % 2 == 1 or segment.count("«") > segment.count("»"):
        return True
    if "„" in segment:  # German quotes open with „ and close with “
        return segment.count("„") > segment.count("“")
    return segment.count("“") > segment.count("”")


def _spans_between(text: str, boundaries: list[Span]) -> list[Span]:
    raw: list[Span] = []
    position = 0
    for end, start in sorted(boundaries):
        if end > position:
            raw.append((position, end))
        position = max(position, start)
    raw.append((position, len(text)))
    return _stripped(text, raw)


def _stripped(text: str, spans: Iterable[Span]) -> list[Span]:
    result: list[Span] = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            result.append((start, end))
    return result
