"""One tokenisation for documents and queries alike (BM25 scores depend on it).

Unicode-aware: NFKC-normalised, case-folded runs of letters and digits, so
"Straße", "STRASSE" and "strasse" meet, and "v4.2" gives "v4" and "2". Stop
words are optional and, when on, applied to both sides.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

ENGLISH_STOP_WORDS = frozenset(
    """a an and are as at be but by for from has have i if in into is it its of on or
    that the their them then there these they this to was were will with you your""".split()
)


def tokenize(text: str, *, stop_words: frozenset[str] = frozenset()) -> list[str]:
    """The terms of ``text`` in order (duplicates kept: BM25 counts them)."""
    terms = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if stop_words:
        return [term for term in terms if term not in stop_words]
    return terms


@lru_cache(maxsize=8)
def stop_words_for(name: str) -> frozenset[str]:
    """The stop-word list configured by name: "english" or "" (none)."""
    if name == "english":
        return ENGLISH_STOP_WORDS
    if name in ("", "none"):
        return frozenset()
    raise ValueError(f"unknown stop-word list {name!r}; use 'english' or 'none'")
