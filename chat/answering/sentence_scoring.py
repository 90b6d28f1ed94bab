"""Which sentences of the retrieved passages answer the question, and how surely.

The extractive answerer has no language model: it can only quote. So the work is
(1) cutting passages into quotable units — sentences, list items, table rows —
(2) scoring each against the question, and (3) deciding whether the best score
is good enough to quote at all. Two signals, because each fails alone:

- **meaning**: cosine similarity of question and sentence embeddings finds
  paraphrases that share no words ("auditors" for "Viewer seats");
- **words**: IDF-weighted coverage of the question's content words catches exact
  facts the embedding blurs (error codes, plan names, numbers), and its gaps are
  the best sign that the passages talk *around* the question without answering it.

A small prior for the passage's retrieval rank breaks ties in retrieval's favour.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from chat.llm.events import ContextPassage
from kb.embeddings.registry import get_embedder
from kb.search.tokenize import ENGLISH_STOP_WORDS, tokenize
from kb.sentences import sentence_spans

# Function words of questions that say nothing about the answer ("how long does…").
# General English, on top of the retrieval stop words.
QUESTION_STOP_WORDS = ENGLISH_STOP_WORDS | frozenset(
    """what which who whom whose when where why how do does did doing done can could
    should would may might must shall much many any some about after before than so
    not no yes we our ours my me us he she his her him also just only more most other
    such same each every all both own very been being am get gets got there here
    someone something anyone anything one ones s t""".split()
)

# A unit shorter than this many content words is a fragment, unless it carries a
# number or is a table row (where "Storage | 50 GB" is the whole fact).
MIN_CONTENT_WORDS = 3
# Headings are short and unpunctuated; at most this many words.
MAX_HEADING_WORDS = 8

_TABLE_SEPARATOR = re.compile(r"^[\s|:+\-=_]*$")  # "---|---", "====", "------  -----"
_COLUMN_GAP = re.compile(r"\S {2,}\S")  # "Starter       60": a preformatted column
_LIST_MARKER = re.compile(r"^(?:[-*+•◦▪‣–—]|\d{1,3}[.)]|[A-Za-z][.)]|\(\w{1,3}\))\s+")
_TERMINAL = (".", "!", "?", ":", ";", "…", ")", '"', "”")


@dataclass(frozen=True)
class Candidate:
    """A quotable unit of one passage.

    ``text`` is what the answer quotes; ``context`` is what the unit needs to be
    understood but does not say itself (a table's header row, the lead-in sentence
    of a list), used for scoring only.
    """

    passage_number: int
    passage_rank: int  # 0 for the passage retrieval ranked first
    position: int  # order within the passage
    text: str
    context: str = ""
    is_row: bool = False

    @property
    def scoring_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    score: float  # 0-1, the confidence that this unit answers the question
    semantic: float  # cosine similarity with the question
    coverage: float  # IDF-weighted share of the question's content words present
    terms: frozenset[str] = field(default_factory=frozenset)


# --- cutting passages into units ----------------------------------------------------


def candidate_sentences(passages: Sequence[ContextPassage]) -> list[Candidate]:
    """Every quotable unit of every passage, in passage order, headings left out."""
    candidates: list[Candidate] = []
    for rank, passage in enumerate(passages):
        candidates.extend(_passage_units(passage, rank))
    return candidates


def _passage_units(passage: ContextPassage, rank: int) -> list[Candidate]:
    headings = {_squash(part) for part in passage.heading_path.split(">")} | {
        _squash(passage.title)
    }
    units: list[Candidate] = []
    header = ""  # the current table's header row
    lead_in = ""  # the sentence ending in ":" that introduced the current list
    lines = list(_unit_texts(passage.text))
    for index, text in enumerate(lines):
        is_row = _is_table_row(text)
        if is_row and not header and _is_table_header(text, lines, index):
            header = text
            continue
        if not is_row:
            header = ""
        if _is_heading(text, headings, followed=index + 1 < len(lines)):
            lead_in = ""
            continue
        is_item = bool(_LIST_MARKER.match(text))
        context = header if is_row else (lead_in if is_item else "")
        if _is_answer_sized(text, is_row):
            units.append(Candidate(passage.number, rank, len(units), text, context, is_row))
        if text.endswith(":"):
            lead_in = text
        elif not is_item:
            lead_in = ""
    return units


def _unit_texts(text: str) -> list[str]:
    """Sentences, with preformatted blocks (several lines in one span) cut into lines.

    Parsers join wrapped prose into one line, so a line break left inside a sentence
    span means layout: a plain-text table, a key/value block, code. A line starting
    in lower case after a line without column gaps is still wrapped prose, though,
    and is joined back.
    """
    units: list[str] = []
    for start, end in sentence_spans(text):
        span = text[start:end]
        if "\n" not in span:
            units.append(span)
            continue
        lines: list[str] = []
        for raw in span.split("\n"):
            line = raw.strip()
            if not line or _TABLE_SEPARATOR.match(line):
                continue
            if lines and line[0].islower() and not _COLUMN_GAP.search(lines[-1]):
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        units.extend(lines)
    return [" ".join(unit.split()) if not _COLUMN_GAP.search(unit) else unit for unit in units]


def _is_table_row(text: str) -> bool:
    return "|" in text.strip("|") or bool(_COLUMN_GAP.search(text))


def _is_table_header(text: str, lines: list[str], index: int) -> bool:
    """A table's first row names its columns: no digits in it, and a row follows."""
    following = lines[index + 1] if index + 1 < len(lines) else ""
    return not any(char.isdigit() for char in text) and _is_table_row(following)


def _is_heading(text: str, headings: set[str], *, followed: bool) -> bool:
    """A line that only names a section: one of the passage's headings, or a short
    unpunctuated line with more text after it ("Free trial", "RATE LIMITS")."""
    if _squash(text) in headings:
        return True
    words = text.split()
    return (
        followed
        and len(words) <= MAX_HEADING_WORDS
        and not text.endswith(_TERMINAL)
        and not any(char.isdigit() for char in text)
        and "|" not in text
    )


def _is_answer_sized(text: str, is_row: bool) -> bool:
    if is_row:
        return len(tokenize(text)) >= 2
    content = content_terms(text)
    return len(content) >= MIN_CONTENT_WORDS or (
        len(content) >= 1 and any(char.isdigit() for char in text)
    )


def _squash(text: str) -> str:
    return " ".join(tokenize(text))


# --- words --------------------------------------------------------------------------


def stem(term: str) -> str:
    """A light suffix stripper so "invoices", "invoiced" and "invoice" meet.

    Deliberately crude (no dictionary): both question and passages go through it,
    so it only has to be consistent, and it leaves short words and numbers alone.
    """
    if len(term) <= 3 or not term.isalpha():
        return term
    if term.endswith("ies") and len(term) > 4:
        term = term[:-3] + "y"
    elif term.endswith(("sses", "xes", "zes", "ches", "shes")):
        term = term[:-2]
    elif term.endswith("s") and not term.endswith(("ss", "us", "is")):
        term = term[:-1]
    for suffix in ("ing", "ed", "ly"):
        if term.endswith(suffix) and len(term) - len(suffix) >= 4:
            term = term[: -len(suffix)]
            break
    if term.endswith("e") and len(term) >= 4:
        term = term[:-1]
    return term


def content_terms(text: str) -> list[str]:
    """Stemmed words of ``text`` that carry meaning (question function words dropped)."""
    return [stem(term) for term in tokenize(text, stop_words=QUESTION_STOP_WORDS)]


def term_weights(question: Sequence[str], units: Sequence[frozenset[str]]) -> dict[str, float]:
    """Inverse document frequency of each question term over the candidate units.

    A term in every unit ("ledgerly") tells nothing; a term in none of them keeps the
    highest weight, so a question whose key word the passages never mention cannot
    be well covered.
    """
    count = len(units)
    return {
        term: math.log(1.0 + (count + 1) / (1 + sum(term in unit for unit in units)))
        for term in set(question)
    }


def keyword_coverage(weights: dict[str, float], unit: frozenset[str]) -> float:
    """Share of the question's term weight that the unit contains (0-1)."""
    total = sum(weights.values())
    if total == 0:
        return 0.0
    return sum(weight for term, weight in weights.items() if term in unit) / total


# --- meaning ------------------------------------------------------------------------

_EMBEDDING_CACHE_SIZE = 8_192  # ~12 MB of MiniLM vectors
_embedding_cache: OrderedDict[tuple[str, str], npt.NDArray[np.float32]] = OrderedDict()
_embedding_lock = threading.Lock()


def embed_texts(model_id: str, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embeddings of ``texts``, remembered per process: the same chunks come back for
    question after question, and re-embedding their sentences is the slow part."""
    with _embedding_lock:
        missing = list(dict.fromkeys(t for t in texts if (model_id, t) not in _embedding_cache))
    if missing:
        vectors = get_embedder(model_id).embed(missing)
        with _embedding_lock:
            for text, vector in zip(missing, vectors, strict=True):
                _embedding_cache[(model_id, text)] = vector
            while len(_embedding_cache) > _EMBEDDING_CACHE_SIZE:
                _embedding_cache.popitem(last=False)
    with _embedding_lock:
        found = [_embedding_cache.get((model_id, t)) for t in texts]
    if any(vector is None for vector in found):  # evicted meanwhile by another thread
        return np.asarray(get_embedder(model_id).embed(list(texts)), dtype=np.float32)
    return np.asarray(found, dtype=np.float32).reshape(len(texts), -1)


def semantic_text(candidate: Candidate, passage: ContextPassage) -> str:
    """What is embedded for a unit: its section name, its context, itself.

    "Released April 21, 2026" only answers "when was 4.3 released" under the
    heading "Version 4.3"; the heading is where that meaning lives.
    """
    section = passage.heading_path.rsplit(">", 1)[-1].strip() or passage.title
    return f"{section}: {candidate.scoring_text}" if section else candidate.scoring_text


# --- answer type --------------------------------------------------------------------

# Questions asking for an amount, a duration, a date or a count.
_QUANTITY_QUESTION = re.compile(
    r"\b(?:how (?:many|much|long|often|far|soon|quickly|big|large|old)|when|what time"
    r"|(?:what|which) (?:day|date|year|month|percentage|price|size))\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty"
    r"|thirty|hundred|thousand|once|twice|hourly|daily|weekly|monthly|annually|yearly"
    r"|immediately|instantly)\b",
    re.IGNORECASE,
)


def expects_quantity(question: str) -> bool:
    """Whether the question asks for a number, an amount, a time or a date."""
    return bool(_QUANTITY_QUESTION.search(question))


def states_quantity(text: str) -> bool:
    return bool(_QUANTITY.search(text))


# --- names the passages never mention -----------------------------------------------

_NAME = re.compile(r"[^\W_][\w.'’-]*")


def unmentioned_names(question: str, passages: Sequence[ContextPassage]) -> list[str]:
    """Proper names and acronyms of the question ("HIPAA", "QuickBooks") that appear
    nowhere in the passages.

    A question about something the passages never name cannot be answered from them,
    however close the rest of its wording comes; paraphrase, by contrast, changes
    ordinary words and rarely a name. Words at the start of a sentence are skipped
    (their capital is grammar, not a name).
    """
    present: set[str] = set()
    for passage in passages:
        present.update(
            stem(term)
            for term in tokenize(f"{passage.title} {passage.heading_path} {passage.text}")
        )
    names: list[str] = []
    for sentence in re.split(r"(?<=[.?!])\s+", question.strip()):
        for word in _NAME.findall(sentence)[1:]:
            if not any(char.isupper() for char in word):
                continue
            terms = [stem(t) for t in tokenize(word, stop_words=QUESTION_STOP_WORDS)]
            if terms and len(word) > 1 and not all(term in present for term in terms):
                names.append(word)
    return names


# --- scoring ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringWeights:
    """How the signals combine into one 0-1 score. Tuned on the demo golden set
    (see the answerer's README entry); each weight is a share of the whole."""

    semantic: float = 0.10  # question-unit cosine similarity, rescaled to 0-1
    lift: float = 0.50  # how far the unit stands out from the passages' median similarity
    lift_ceiling: float = 0.4  # a lift that counts as 1
    coverage: float = 0.30  # IDF-weighted share of question words in the unit
    rank_prior: float = 0.10  # 1 / (1 + retrieval rank of the unit's passage)
    heading_words: float = 0.5  # a question word found only in the unit's headings counts this much
    semantic_floor: float = 0.15  # cosine similarity that counts as 0 (unrelated English text)
    semantic_ceiling: float = 0.85  # and as 1
    missing_quantity: float = 0.15  # subtracted when a "how many/when" question meets no number


DEFAULT_WEIGHTS = ScoringWeights()


def rescaled_similarity(cosine: float, weights: ScoringWeights) -> float:
    """Map cosine similarity onto 0-1: MiniLM puts unrelated sentences near 0.15,
    a paraphrase near 0.85."""
    span = weights.semantic_ceiling - weights.semantic_floor
    return min(1.0, max(0.0, (cosine - weights.semantic_floor) / span))


def score_candidates(
    question: str,
    passages: Sequence[ContextPassage],
    *,
    model_id: str,
    question_vector: npt.NDArray[np.floating],
    weights: ScoringWeights = DEFAULT_WEIGHTS,
) -> list[ScoredCandidate]:
    """Every unit of the passages with its score, best first."""
    candidates = candidate_sentences(passages)
    if not candidates:
        return []
    by_number = {passage.number: passage for passage in passages}
    own = [frozenset(content_terms(c.scoring_text)) for c in candidates]
    headings = [
        frozenset(
            content_terms(
                f"{by_number[c.passage_number].title} {by_number[c.passage_number].heading_path}"
            )
        )
        for c in candidates
    ]
    idf = term_weights(content_terms(question), own)
    vectors = embed_texts(
        model_id, [semantic_text(c, by_number[c.passage_number]) for c in candidates]
    )
    similarities = cosine_similarities(question_vector, vectors)
    background = float(np.median(similarities))
    wants_quantity = expects_quantity(question)
    scored = []
    for candidate, terms, heading, similarity in zip(
        candidates, own, headings, similarities, strict=True
    ):
        coverage = keyword_coverage(idf, terms) + weights.heading_words * keyword_coverage(
            idf, heading - terms
        )
        score = (
            weights.semantic * rescaled_similarity(float(similarity), weights)
            + weights.lift * min(1.0, max(0.0, (similarity - background) / weights.lift_ceiling))
            + weights.coverage * coverage
            + weights.rank_prior / (1 + candidate.passage_rank)
        )
        if wants_quantity and not states_quantity(candidate.text):
            score -= weights.missing_quantity
        scored.append(
            ScoredCandidate(
                candidate, max(0.0, min(1.0, score)), float(similarity), coverage, terms
            )
        )
    scored.sort(key=lambda s: (-s.score, s.candidate.passage_rank, s.candidate.position))
    return scored


def cosine_similarities(
    question_vector: npt.NDArray[np.floating], unit_vectors: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """Cosine similarity of each unit with the question (vectors are L2-normalised)."""
    if len(unit_vectors) == 0:
        return np.zeros(0)
    return np.asarray(unit_vectors @ np.asarray(question_vector), dtype=np.float64)
