"""The citation check: each cited sentence is scored against the passage it cites."""

from __future__ import annotations

import pytest

from chat.answering.citations import citations_check, lexical_support, sentence_is_trivial
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.registry import get_embedder

pytestmark = pytest.mark.django_db  # embeddings are recorded in the usage ledger

PASSAGES = {
    1: "Refunds\nAnnual plans can be refunded within 30 days of purchase, pro rata. "
    "Monthly plans are not refunded.",
    2: "Growth plan\nThe Growth plan costs $59 / month or $590 / year and includes 5 users.",
}


def check(answer: str, min_support: float = 0.45):
    embedded = get_embedder(MINILM_MODEL_ID).embed(list(PASSAGES.values()))
    vectors = dict(zip(PASSAGES, embedded, strict=True))
    return citations_check(
        answer, passages=PASSAGES, passage_vectors=vectors, embedding_model=MINILM_MODEL_ID,
        min_support=min_support,
    )  # fmt: skip


def test_citations_that_the_passage_supports_stand() -> None:
    checked = check(
        "The Growth plan costs $59 per month or $590 a year. [2] "
        "Annual plans get a pro-rata refund within 30 days [1]."
    )

    assert checked.grounded
    assert checked.cited == (2, 1)
    assert checked.text == (
        "The Growth plan costs $59 per month or $590 a year. [2] "
        "Annual plans get a pro-rata refund within 30 days [1]."
    )
    assert all(s.supported for s in checked.supports)


def test_a_citation_to_the_wrong_passage_is_dropped_and_the_sentence_marked() -> None:
    checked = check("The Growth plan costs $59 a month [1].")

    assert not checked.grounded
    assert checked.text == "The Growth plan costs $59 a month. [?]"
    (support,) = checked.supports
    assert support.number == 1 and not support.supported and support.score < 0.45


def test_only_the_unsupported_part_of_a_sentence_citations_is_dropped() -> None:
    checked = check("Growth costs $59 per month [1][2].")

    assert checked.cited == (2,)
    assert checked.text == "Growth costs $59 per month [2]."


def test_markers_naming_no_passage_are_dropped() -> None:
    checked = check("The Growth plan costs $59 / month [2, 7].")

    assert checked.text == "The Growth plan costs $59 / month [2]."
    assert [s.number for s in checked.supports] == [2]


def test_a_paraphrase_is_supported_but_an_invention_citing_the_same_passage_is_not() -> None:
    paraphrase = check("You can get money back on a yearly plan within a month of buying it [1].")
    invention = check("Ledgerly is HIPAA compliant and offers a mobile app [1].")

    assert paraphrase.grounded
    assert not invention.grounded


def test_an_answer_without_citations_has_no_grounded_content() -> None:
    checked = check("The Growth plan costs $59 per month.")

    assert not checked.grounded and checked.supports == ()


def test_lexical_support_is_the_share_of_the_sentence_content_words_in_the_passage() -> None:
    assert lexical_support("Growth costs $59", PASSAGES[2]) == 1.0
    assert lexical_support("Growth costs $99 yearly", PASSAGES[2]) == pytest.approx(0.5)


def test_a_number_the_passage_does_not_state_sinks_the_citation() -> None:
    checked = check("The Growth plan costs $95 per month or $590 per year [2].")

    assert not checked.grounded
    assert not checked.supports[0].numbers_match


MIXED = (
    "Here is what the documents say:\n\n"
    "- The Growth plan costs $59 / month [2].\n"
    "- Ledgerly has a mobile app for iOS.\n"
    "- Monthly plans are refunded within 30 days [2].\n\n"
    "Annual plans can be refunded within 30 days of purchase [1]."
)


def test_every_sentence_says_whether_a_citation_supports_it() -> None:
    checked = check(MIXED)

    assert [(s.text, s.citations, s.supported, s.counted) for s in checked.sentences] == [
        ("Here is what the documents say:", (), True, False),
        ("The Growth plan costs $59 / month.", (2,), True, True),
        ("Ledgerly has a mobile app for iOS.", (), False, True),  # cites nothing
        ("Monthly plans are refunded within 30 days.", (), False, True),  # wrongly cited
        ("Annual plans can be refunded within 30 days of purchase.", (1,), True, True),
    ]
    assert checked.supported_share == pytest.approx(2 / 4)
    assert checked.text == (
        "Here is what the documents say:\n\n"
        "- The Growth plan costs $59 / month [2].\n"
        "- Ledgerly has a mobile app for iOS. [?]\n"
        "- Monthly plans are refunded within 30 days. [?]\n\n"
        "Annual plans can be refunded within 30 days of purchase [1]."
    )


def test_each_sentence_span_points_at_it_in_the_checked_text() -> None:
    checked = check(MIXED)

    for sentence in checked.sentences:
        shown = checked.text[sentence.start : sentence.end]
        assert shown.replace(" [2]", "").replace(" [1]", "").removeprefix("- ") == sentence.text
        marked = checked.text[sentence.end :].startswith(" [?]")
        assert marked == (not sentence.supported)


def test_rewriting_the_sentences_keeps_their_spans_true() -> None:
    checked = check(MIXED)

    rewritten = checked.rewritten(lambda sentence: sentence.replace("Growth", "Growth (annual)"))

    assert "Growth (annual) plan" in rewritten.text and rewritten.text.count("[?]") == 2
    for before, after in zip(checked.sentences, rewritten.sentences, strict=True):
        assert rewritten.text[after.start : after.end].startswith(
            checked.text[before.start : before.start + 4]
        )
        assert after.supported == before.supported


@pytest.mark.parametrize(
    "sentence",
    [
        "## Refunds",
        "**Refunds**",
        "Here is what the documents say:",
        "To ask for a refund:",
        "Sure, here's what I found.",
        "Let me know if you have other questions.",
        "Yes.",
        "I don't have that information in the knowledge base.",
    ],
)
def test_sentences_that_state_nothing_to_check_are_not_counted(sentence: str) -> None:
    assert sentence_is_trivial(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "No, monthly plans are not refunded.",
        "The Growth plan costs $59 and includes:",
        "Here is the price: $59 per month.",
        "Ledgerly works offline",
    ],
)
def test_sentences_that_state_something_are_counted(sentence: str) -> None:
    assert not sentence_is_trivial(sentence)


def test_an_answer_of_trivial_sentences_only_has_no_share_to_speak_of() -> None:
    checked = check("## Refunds\n\nHere is what I found:")

    assert checked.supported_share is None and not checked.grounded
    assert "[?]" not in checked.text
