"""Whether the passages answer the question at all: the extractive answerer's abstention.

Questions written to look answerable (SQuAD 2.0's unanswerable half) retrieve
passages as close as real ones, and their best sentence is often just as similar.
What gives them away is a detail: a word of the question that the best sentence
lacks or contradicts, a negation, a number or name that is not there, an answer of
the wrong type. No single signal is enough, so a logistic regression weighs them:

- **fit**: how the best unit scores (the SELECTION and CONFIDENCE blends of
  chat.answering.sentence_scoring, its similarity, lift and word coverage) and its
  margin over the next distinct unit;
- **coverage**: the IDF-weighted share of the question's content words missing from
  every passage, from the best unit's passage and from the best unit itself; the
  rarest missing word; question words found only in *other* sentences of that
  passage (the question joins facts the text keeps apart);
- **contradiction**: negation in the question or in the sentence; numbers of the
  question the sentence lacks; unmatched question words that differ from a
  sentence word only by a prefix ("deceleration" / "acceleration");
  names of the question that no passage mentions;
- **answer type**: the question word (who, when, how many…), whether the sentence
  has an answer of that kind at all (a number for "how many", number words included;
  a date, period or time of day for "when"; a duration for "how long"; a name the
  question does not already give for "who" and "where"), and whether it offers
  something new of that kind (a name, a number, a year not in the question).

The weights and the probability threshold are fitted by ``manage.py answerer_fit``
with cross-validation by article (docs/evaluation.md) and shipped in
``abstention_weights.json``; its ``meta`` says on which data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from chat.answering.sentence_scoring import ScoredCandidate, unmentioned_names
from kb.linear import LinearModel
from kb.search.terms import content_terms
from kb.units import text_terms
from llm.events import ContextPassage

WEIGHTS_FILE = Path(__file__).with_name("abstention_weights.json")

_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot|except|unable"
    r"|fail(?:s|ed)?)\b|n't\b",
    re.IGNORECASE,
)
# The question word decides what an answer must contain; "other" covers imperatives.
QUESTION_WORDS = (
    "how many", "how much", "how long", "what year", "when", "who", "whom", "whose",
    "where", "why", "which", "what", "how",
)  # fmt: skip
_YEAR = re.compile(r"\b(?:1\d{3}|20\d{2})\b")
_DIGITS = re.compile(r"\d+")
# Numbers written as words count as numbers: "five failed attempts" answers "how many".
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
     "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000",
     "million": "1000000", "billion": "1000000000", "dozen": "12", "half": "0.5",
     "once": "1", "twice": "2", "single": "1", "double": "2"}  # fmt: skip
_NUMBER_WORD = re.compile(r"\b(?:" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
# What a "when" answer contains: a year, a date, a period or a time of day.
_TIME = re.compile(
    r"\b(?:1\d{3}|20\d{2}|\d{1,2}(?:st|nd|rd|th)|january|february|march|april|may|june|july"
    r"|august|september|october|november|december|monday|tuesday|wednesday|thursday|friday"
    r"|saturday|sunday|centur(?:y|ies)|decades?|years?|months?|weeks?|days?|hours?|minutes?"
    r"|seconds?|ago|era|period|age|reign|dynasty|season|spring|summer|autumn|winter"
    r"|morning|afternoon|evening|night|noon|midnight|today|yesterday|tomorrow|daily|weekly"
    r"|monthly|yearly|annually|bc|ad|bce|ce|before|after|during|until|since|early|late"
    r"|\d{1,2}[:.]\d{2}|\d+\s*(?:am|pm|s|ms|h|min))\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][\w'’-]*")

FEATURES = (
    "best_score", "best_confidence", "max_confidence", "similarity", "lift", "coverage",
    "margin", "missing_everywhere", "missing_everywhere_count", "missing_in_passage",
    "missing_in_unit", "rarest_missing_in_passage", "only_in_other_units",
    "unmatched_count", "prefix_contrasts", "unmentioned_names", "question_numbers_missing",
    "question_negated", "sentence_negated", "question_terms", "unit_precision",
    "close_units", "new_names", "new_numbers", "new_years", "best_passage_rank",
    # The answer type asked for, and absent from the sentence.
    "wants_number_lacks_it", "wants_time_lacks_it", "wants_duration_lacks_it",
    "wants_name_lacks_it", "wants_number_has_only_the_questions",
    *(f"asks_{word.replace(' ', '_')}" for word in QUESTION_WORDS), "asks_other",
)  # fmt: skip


@lru_cache(maxsize=4)
def abstention_model(path: Path = WEIGHTS_FILE) -> LinearModel | None:
    """The fitted model, or None (then the answerer falls back on its confidence)."""
    model = LinearModel.load(path)
    return model if model is not None and model.features == FEATURES else None


def question_word(question: str) -> str:
    lowered = question.lower()
    for word in QUESTION_WORDS:
        if re.search(rf"\b{word}\b", lowered):
            return word
    return "other"


def _numbers(text: str) -> set[str]:
    """The numbers in a text, as digits (number words included)."""
    found = set(_DIGITS.findall(text))
    found.update(_NUMBER_WORDS[m.group(0).lower()] for m in _NUMBER_WORD.finditer(text))
    return found


def _names(text: str) -> set[str]:
    """Capitalised words after the first word of the text, lower-cased."""
    words = _WORD.findall(text)
    return {w.lower() for w in words[1:] if w[0].isupper()}


def _prefix_contrast(one: str, other: str) -> bool:
    """Two different words that share a long ending: "deceleration" / "acceleration",
    "import" / "export", "minimum" / "maximum" — typically opposites, rarely synonyms."""
    if one == other or min(len(one), len(other)) < 4:
        return False
    shared = 0
    while shared < min(len(one), len(other)) and one[-1 - shared] == other[-1 - shared]:
        shared += 1
    return (
        shared >= 4
        and shared >= 0.6 * min(len(one), len(other))
        and max(len(one), len(other)) - shared <= 4
    )


def abstention_features(
    question: str, scored: Sequence[ScoredCandidate], passages: Sequence[ContextPassage]
) -> npt.NDArray[np.float64]:
    """The FEATURES row for a question and its scored units (best first)."""
    best = scored[0]
    second = next((s for s in scored[1:] if s.candidate.text != best.candidate.text), None)
    asked = set(content_terms(question))
    passage_terms = {p.number: text_terms(f"{p.text} {p.title} {p.heading_path}") for p in passages}
    everywhere = set().union(*passage_terms.values()) if passage_terms else set()
    # Rarity over the retrieved units: a word in every unit tells nothing.
    units = [s.terms | s.heading_terms for s in scored]
    idf = {t: math.log(1.0 + (len(units) + 1) / (1 + sum(t in u for u in units))) for t in asked}
    total = sum(idf.values()) or 1.0
    in_unit = best.terms | best.heading_terms
    in_passage = passage_terms.get(best.candidate.passage_number, frozenset())
    missing_everywhere = [t for t in asked if t not in everywhere]
    missing_in_passage = [t for t in asked if t not in in_passage]
    missing_in_unit = [t for t in asked if t not in in_unit]
    neighbours: set[str] = set()
    for other in scored:
        if other is not best and other.candidate.passage_number == best.candidate.passage_number:
            neighbours |= other.terms
    only_in_others = [t for t in missing_in_unit if t in neighbours]
    unmatched = [t for t in missing_in_unit if t.isalpha()]
    sentence_only = [t for t in best.terms if t not in asked and t.isalpha()]
    text = best.candidate.text
    question_numbers = _numbers(question)
    sentence_numbers = _numbers(text)
    asked_word = question_word(question)
    new_names = _names(text) - _names(question) - asked
    wants_number = asked_word in ("how many", "how much")
    row = [
        best.score,
        best.confidence,
        max(s.confidence for s in scored),
        best.signals.similarity,
        best.signals.lift,
        best.signals.coverage,
        best.score - (second.score if second else 0.0),
        sum(idf[t] for t in missing_everywhere) / total,
        len(missing_everywhere),
        sum(idf[t] for t in missing_in_passage) / total,
        sum(idf[t] for t in missing_in_unit) / total,
        max((idf[t] for t in missing_in_passage), default=0.0),
        sum(idf[t] for t in only_in_others) / total,
        len(unmatched),
        sum(1 for a in unmatched for b in sentence_only if _prefix_contrast(a, b)),
        len(unmentioned_names(question, passages)),
        len(question_numbers - sentence_numbers),
        bool(_NEGATION.search(question)),
        bool(_NEGATION.search(text)),
        len(asked),
        len(best.terms & asked) / max(1, len(best.terms)),
        sum(1 for s in scored if s.score >= best.score - 0.05),
        len(new_names),
        len(sentence_numbers - question_numbers),
        len(set(_YEAR.findall(text)) - question_numbers),
        best.candidate.passage_rank,
        wants_number and not sentence_numbers,
        asked_word in ("when", "what year") and not _TIME.search(text),
        asked_word == "how long" and not (sentence_numbers or _TIME.search(text)),
        asked_word in ("who", "whom", "whose", "where") and not new_names,
        wants_number and bool(sentence_numbers) and sentence_numbers <= question_numbers,
        *(asked_word == word for word in QUESTION_WORDS),
        asked_word == "other",
    ]
    return np.asarray(row, dtype=np.float64)


def answerable_probability(model: LinearModel, features: npt.NDArray[np.float64]) -> float:
    """P(the passages answer the question), by the fitted model."""
    score = float(model.scores(features.reshape(1, -1))[0])
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, score))))
