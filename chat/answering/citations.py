"""Citation parsing and the citation check.

An answer cites passages with ``[n]`` markers. After generation, every sentence
that cites a passage is scored for support against that passage from two
measures: lexical overlap (the share of the sentence's content words the passage
contains) and embedding similarity (the sentence against the passage's stored
vector). The score is the better of the similarity and the mean of both, so a
faithful paraphrase (few shared words, close meaning) passes, and so does a
close quotation. Citations below CAIRN_CITATION_MIN_SUPPORT are dropped; so is
any citation of a sentence stating a number the passage does not contain
("$95" and "$59" embed alike, and numbers are where invented facts hurt most).
A sentence whose citations all fail is marked ``[?]`` (shown as "not verified");
sentences that cite nothing (a preamble, a transition) are left as they are.
An answer with no supported citation at all has no grounded content: the
pipeline turns it into the abstention.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from kb.embeddings.registry import get_embedder
from kb.search.tokenize import ENGLISH_STOP_WORDS, tokenize
from kb.sentences import sentence_spans

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
UNVERIFIED = "[?]"
_LEADING_MARKERS = re.compile(r"(?:\s*\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\])+")

Vector = npt.NDArray[np.floating]


@dataclass(frozen=True)
class Support:
    """How well one cited passage supports one sentence."""

    number: int
    sentence: str
    lexical: float
    semantic: float
    supported: bool

    numbers_match: bool = True

    @property
    def score(self) -> float:
        return support_score(self.lexical, self.semantic)


def support_score(lexical: float, semantic: float) -> float:
    semantic = max(semantic, 0.0)
    return max(semantic, (lexical + semantic) / 2)


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(MARKER.sub(" ", text))}


@dataclass(frozen=True)
class CheckedAnswer:
    text: str  # the answer with unsupported markers dropped and unverified sentences marked
    supports: tuple[Support, ...]
    cited: tuple[int, ...]  # supported passage numbers, in order of first citation
    best_score: dict[int, float] = field(default_factory=dict)  # per supported passage

    @property
    def grounded(self) -> bool:
        return bool(self.cited)


@dataclass
class _Sentence:
    start: int
    end: int
    markers: list[re.Match[str]] = field(default_factory=list)


def marker_numbers(match: re.Match[str]) -> list[int]:
    return [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1))]


def content_terms(text: str) -> set[str]:
    return set(tokenize(MARKER.sub(" ", text), stop_words=ENGLISH_STOP_WORDS))


def lexical_support(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that the passage contains."""
    terms = content_terms(sentence)
    if not terms:
        return 0.0
    return len(terms & content_terms(passage)) / len(terms)


def _sentences(text: str) -> list[_Sentence]:
    """Sentences with their markers; a marker opening a sentence ("… month. [2] Next")
    belongs to the sentence before it."""
    sentences = [_Sentence(start, end) for start, end in sentence_spans(text)]
    for index, sentence in enumerate(sentences):
        leading = _LEADING_MARKERS.match(text, sentence.start, sentence.end)
        if index and leading:
            previous = sentences[index - 1]
            previous.end = leading.end()
            sentence.start = leading.end()
    for match in MARKER.finditer(text):
        owner = next((s for s in sentences if s.start <= match.start() < s.end), None)
        if owner is not None:
            owner.markers.append(match)
    return sentences


def citations_check(
    answer: str,
    *,
    passages: Mapping[int, str],
    passage_vectors: Mapping[int, Vector],
    embedding_model: str,
    min_support: float,
) -> CheckedAnswer:
    """Score every citation of ``answer`` and keep those that hold.

    ``passages`` maps a passage number to its text, ``passage_vectors`` to its
    stored embedding (normalised). Markers naming no passage are dropped.
    """
    sentences = [s for s in _sentences(answer) if s.markers]
    texts = [MARKER.sub(" ", answer[s.start : s.end]).strip() for s in sentences]
    vectors = list(get_embedder(embedding_model).embed(texts)) if texts else []
    supports: list[Support] = []
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied right to left
    cited: list[int] = []
    best: dict[int, float] = {}
    for sentence, text, vector in zip(sentences, texts, vectors, strict=True):
        kept_any = False
        for match in sentence.markers:
            kept = []
            for number in marker_numbers(match):
                if number not in passages:
                    continue
                passage_vector = passage_vectors.get(number)
                semantic = 0.0 if passage_vector is None else float(np.dot(vector, passage_vector))
                lexical = lexical_support(text, passages[number])
                numbers_match = numbers_in(text) <= numbers_in(passages[number])
                supported = numbers_match and support_score(lexical, semantic) >= min_support
                support = Support(number, text, lexical, semantic, supported, numbers_match)
                supports.append(support)
                if support.supported:
                    kept.append(number)
                    best[number] = max(best.get(number, 0.0), support.score)
                    if number not in cited:
                        cited.append(number)
            kept = list(dict.fromkeys(kept))
            kept_any = kept_any or bool(kept)
            replacement = "".join(f"[{n}]" for n in kept)
            if replacement != match.group(0):
                edits.append((match.start(), match.end(), replacement))
        if not kept_any:
            edits.append((sentence.end, sentence.end, f" {UNVERIFIED}"))
    checked = answer
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        checked = checked[:start] + replacement + checked[end:]
    checked = re.sub(r"[ \t]+(?=[.,;:!?]|\n|$)", "", re.sub(r"[ \t]{2,}", " ", checked))
    return CheckedAnswer(checked.strip(), tuple(supports), tuple(cited), best)
