"""Content terms: the stemmed words of a text that carry meaning.

Shared by the reranker (kb.search.rerank), the quotable units (kb.units) and the
extractive answerer's scoring (chat.answering.sentence_scoring), so that a question
and a passage are always cut into words the same way.
"""

from __future__ import annotations

from kb.search.tokenize import ENGLISH_STOP_WORDS, tokenize

# Function words of questions that say nothing about the answer ("how long does…").
# General English, on top of the retrieval stop words.
QUESTION_STOP_WORDS = ENGLISH_STOP_WORDS | frozenset(
    """what which who whom whose when where why how do does did doing done can could
    should would may might must shall much many any some about after before than so
    not no yes we our ours my me us he she his her him also just only more most other
    such same each every all both own very been being am get gets got there here
    someone something anyone anything one ones s t""".split()
)


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
