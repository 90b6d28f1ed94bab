"""Which sentences of the retrieved passages answer the question, and how surely.

The extractive answerer has no language model: it can only quote. So the work is
(1) cutting passages into quotable units — sentences, list items, table rows —
(2) scoring each against the question, and (3) deciding whether the best one is
an answer at all. The signals, because each fails alone:

- **meaning**: cosine similarity of question and unit embeddings finds paraphrases
  that share no words ("auditors" for "Viewer seats");
- **lift**: how far a unit's similarity stands out from the median unit of the
  passages. Every passage retrieved for a question is similar to it, answerable or
  not; an answer is the unit that stands out from its neighbours. This is the
  signal that best tells "answered" from "merely on the topic";
- **words**: IDF-weighted coverage of the question's content words catches exact
  facts the embedding blurs (error codes, plan names, numbers);
- **answer type**: "how many / when" wants a number, and a unit without one is
  rarely the answer;
- **retrieval rank** of the unit's passage, a small prior.

Two blends of them: ``SELECTION`` orders units for quoting, ``CONFIDENCE`` decides
whether to quote at all (with ``unmentioned_names``: a question naming something no
passage mentions is not answered by them).
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chat.llm.events import ContextPassage
from kb.embeddings.registry import get_embedder
from kb.guard.passages import sentence_is_instruction
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
# How much more a question term with digits weighs than a word.
NUMBER_WEIGHT = 2.0
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
    of a list); ``section`` is the innermost heading it sits under.
    """

    passage_number: int
    passage_rank: int  # 0 for the passage retrieval ranked first
    position: int  # order within the passage
    text: str
    context: str = ""
    is_row: bool = False
    section: str = ""

    @property
    def scoring_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text


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
    section = passage.heading_path.rsplit(">", 1)[-1].strip() or passage.title.strip()
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
        marker = _LIST_MARKER.match(text)
        is_item = marker is not None
        context = header if is_row else (lead_in if is_item else "")
        quote = text[marker.end() :] if marker else text  # "2. Enter a name" -> "Enter a name"
        # A lead-in ("We accept:") only announces the list that answers; it is context.
        # A sentence aimed at an assistant (a poisoned document) is never an answer.
        if (
            _is_answer_sized(quote, is_row)
            and not text.endswith(":")
            and not sentence_is_instruction(quote)
        ):
            units.append(
                Candidate(passage.number, rank, len(units), quote, context, is_row, section)
            )
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
    and is joined back. A table row is one line whatever sentences its cells hold.
    """
    units: list[str] = []
    previous_end = -1
    for start, end in sentence_spans(text):
        span = text[start:end]
        same_line = previous_end >= 0 and "\n" not in text[previous_end:start]
        previous_end = end
        if same_line and units and "|" in units[-1] and "\n" not in span:
            units[-1] = f"{units[-1]} {span}"
            continue
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
    be well covered. Numbers and codes ("503", "v1", "4") weigh double: embeddings
    barely tell "LDG-503" from "LDG-500", so words must.
    """
    count = len(units)
    return {
        term: math.log(1.0 + (count + 1) / (1 + sum(term in unit for unit in units)))
        * (NUMBER_WEIGHT if any(char.isdigit() for char in term) else 1.0)
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


def semantic_text(candidate: Candidate) -> str:
    """What is embedded for a unit: its section name, its context, itself.

    "Released April 21, 2026" only answers "when was 4.3 released" under the
    heading "Version 4.3"; the heading is where that meaning lives.
    """
    if candidate.section:
        return f"{candidate.section}: {candidate.scoring_text}"
    return candidate.scoring_text


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
class Signals:
    """What is known about one unit, each on a 0-1 scale."""

    similarity: float  # question-unit cosine similarity, rescaled by SignalScales
    lift: float  # how far the unit stands out from the passages' other units (0: not at all)
    coverage: float  # IDF-weighted share of the question's words in the unit (or its headings)
    rank_prior: float  # 1 / (1 + retrieval rank of the unit's passage)
    quantity_missing: bool  # a "how many / when" question, and the unit states no number


@dataclass(frozen=True)
class Blend:
    """How signals combine into one 0-1 score; weights are shares of the whole."""

    similarity: float
    lift: float
    coverage: float
    rank_prior: float
    missing_quantity: float  # subtracted when ``quantity_missing``

    def score(self, signals: Signals) -> float:
        value = (
            self.similarity * signals.similarity
            + self.lift * signals.lift
            + self.coverage * signals.coverage
            + self.rank_prior * signals.rank_prior
        )
        if signals.quantity_missing:
            value -= self.missing_quantity
        return min(1.0, max(0.0, value))


# Choosing what to quote: a unit that is close in meaning *and* holds the question's
# words is the answer; similarity alone prefers fluent neighbours, words alone prefer
# sentences that merely repeat the question. Tuned on the demo golden set.
SELECTION = Blend(similarity=0.3, lift=0.3, coverage=0.3, rank_prior=0.1, missing_quantity=0.15)
# Deciding whether to answer at all: only how far the best unit stands out from the rest
# tells an answer from text that is merely on the topic (every passage retrieved for a
# question is similar to it, answerable or not). Tuned on the demo golden set.
CONFIDENCE = Blend(similarity=0.0, lift=0.7, coverage=0.2, rank_prior=0.1, missing_quantity=0.15)


@dataclass(frozen=True)
class SignalScales:
    """Where the raw measurements sit for MiniLM on short sentences."""

    similarity_floor: float = 0.15  # cosine similarity of unrelated English text: 0
    similarity_ceiling: float = 0.85  # of a paraphrase: 1
    lift_ceiling: float = 0.4  # a unit this far above the background: 1
    background_prior: float = 0.25  # similarity of an off-topic unit, when units are few
    background_weight: float = 5.0  # how many units that prior counts as
    heading_words: float = 0.5  # a question word only in the unit's headings counts this much


SCALES = SignalScales()


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    score: float  # SELECTION blend: how well this unit answers the question
    confidence: float  # CONFIDENCE blend: how surely it is an answer at all
    signals: Signals
    terms: frozenset[str]  # the unit's content terms (stemmed)
    heading_terms: frozenset[str]  # its passage's heading and title terms, less ``terms``


def background_similarity(similarities: npt.NDArray[np.float64], scales: SignalScales) -> float:
    """What a unit of these passages that does not answer the question scores.

    The median unit of six retrieved passages is on the topic but not the answer, so
    an answer has to stand out from it: a question the passages do not answer finds
    many units about as similar as its best one. Few units make a poor median, so it
    is pulled towards a fixed prior, as if ``background_weight`` more units scored that.
    """
    count = len(similarities)
    median = float(np.median(similarities)) if count else scales.background_prior
    return (count * median + scales.background_weight * scales.background_prior) / (
        count + scales.background_weight
    )


def _unit_scale(value: float, low: float, high: float) -> float:
    return min(1.0, max(0.0, (value - low) / (high - low)))


def score_candidates(
    question: str,
    passages: Sequence[ContextPassage],
    *,
    model_id: str,
    question_vector: npt.NDArray[np.floating],
    selection: Blend = SELECTION,
    confidence: Blend = CONFIDENCE,
    scales: SignalScales = SCALES,
) -> list[ScoredCandidate]:
    """Every unit of the passages with its scores, the best answer first."""
    candidates = candidate_sentences(passages)
    if not candidates:
        return []
    heading_of = {
        passage.number: frozenset(content_terms(f"{passage.title} {passage.heading_path}"))
        for passage in passages
    }
    own = [frozenset(content_terms(c.scoring_text)) for c in candidates]
    headings = [heading_of[c.passage_number] for c in candidates]
    idf = term_weights(content_terms(question), own)
    vectors = embed_texts(model_id, [semantic_text(c) for c in candidates])
    similarities = cosine_similarities(question_vector, vectors)
    background = background_similarity(similarities, scales)
    wants_quantity = expects_quantity(question)
    scored = []
    for candidate, terms, heading, similarity in zip(
        candidates, own, headings, similarities, strict=True
    ):
        signals = Signals(
            similarity=_unit_scale(
                float(similarity), scales.similarity_floor, scales.similarity_ceiling
            ),
            lift=_unit_scale(float(similarity) - background, 0.0, scales.lift_ceiling),
            coverage=min(
                1.0,
                keyword_coverage(idf, terms)
                + scales.heading_words * keyword_coverage(idf, heading - terms),
            ),
            rank_prior=1.0 / (1 + candidate.passage_rank),
            quantity_missing=wants_quantity and not states_quantity(candidate.text),
        )
        scored.append(
            ScoredCandidate(
                candidate,
                selection.score(signals),
                confidence.score(signals),
                signals,
                terms,
                heading - terms,
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
