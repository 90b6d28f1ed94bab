"""When two questions ask the same thing: the semantic cache's wording rules.

Each pair below scores high on cosine similarity; the rules decide whether one
question's answer may be served for the other, and name the first difference.
"""

from __future__ import annotations

import pytest

from llm.question_agreement import DISAGREEMENTS, questions_agree


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("Who can request a refund?", "Who cannot request a refund?"),
        ("Who can request a refund?", "Who can't request a refund?"),
        ("Who can request a refund?", "Who can not request a refund?"),
        ("Which plans include SSO?", "Which plans never include SSO?"),
        ("Can I export invoices with attachments?", "Can I export invoices without attachments?"),
        ("Which roles can delete invoices?", "Which roles except Owner can delete invoices?"),
        # Counted, not merely present: the second adds a negation to one that had one.
        (
            "Which court argued that the treaty did not prevent it?",
            "Which court did not argue that the treaty did not prevent it?",
        ),
    ],
)
def test_a_negation_makes_another_question(cached: str, asked: str) -> None:
    assert questions_agree(cached, asked) == "negation"


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("Who can approve an invoice?", "Who must approve an invoice?"),
        ("May I delete a paid invoice?", "Should I delete a paid invoice?"),
        ("Can I export my data?", "How do I export my data?"),
    ],
)
def test_permission_is_not_obligation(cached: str, asked: str) -> None:
    assert questions_agree(cached, asked) == "modality"


def test_modal_verbs_of_one_kind_ask_the_same() -> None:
    assert questions_agree("Who can approve an invoice?", "Who may approve an invoice?") == (
        "agree"
    )


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("What happens before the trial ends?", "What happens after the trial ends?"),
        ("Which plan has the most users?", "Which plan has the least users?"),
        ("What was the first invoice template?", "What was the last invoice template?"),
        ("Who has the earliest access?", "Who has the latest access?"),
        ("Which plan costs more?", "Which plan costs less?"),
        ("What is the minimum order?", "What is the maximum order?"),
        ("Which tier has higher limits?", "Which tier has lower limits?"),
        ("Who was the first mayor?", "Who was the mayor?"),
    ],
)
def test_order_and_comparison_words_make_another_question(cached: str, asked: str) -> None:
    assert questions_agree(cached, asked) == "comparison"


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("How much is the Growth plan monthly?", "How much is the Growth plan yearly?"),
        ("How much is the Growth plan per month?", "How much is the Growth plan annually?"),
        ("How many days does a refund take?", "How many hours does a refund take?"),
        ("Is the upload limit 5 GB?", "Is the upload limit 5 MB?"),
        ("Is the fee 3 $?", "Is the fee 3 %?"),
        ("What does it cost in euros?", "What does it cost in dollars?"),
    ],
)
def test_periods_and_units_make_another_question(cached: str, asked: str) -> None:
    assert questions_agree(cached, asked) == "unit"


def test_a_period_may_be_worded_either_way() -> None:
    assert questions_agree("What is the yearly price?", "What is the annual price?") == "agree"
    assert questions_agree("How much is it per year?", "How much is it yearly?") == "agree"


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("What happens after 3 failed logins?", "What happens after 5 failed logins?"),
        ("What changed in 2025?", "What changed in 2026?"),
        ("What happens after three failed logins?", "What happens after five failed logins?"),
        ("What is the second step?", "What is the third step?"),
        ("Who won the 2nd prize?", "Who won the 3rd prize?"),
        ("What is one source of EU law?", "What are the sources of EU law?"),
    ],
)
def test_numbers_make_another_question(cached: str, asked: str) -> None:
    assert questions_agree(cached, asked) == "number"


def test_a_number_may_be_a_word_or_digits() -> None:
    assert questions_agree("Is there a limit of three users?", "Is there a limit of 3 users?") == (
        "agree"
    )
    assert questions_agree("Does it cost 1,000 dollars?", "Does it cost 1000 dollars?") == "agree"


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("Does the Growth plan include SSO?", "Does the Starter plan include SSO?"),
        ("What does LDG-409 mean?", "What does LDG-410 mean?"),
        ("Is the v2 API deprecated?", "Is the v3 API deprecated?"),
        ("Does Ledgerly support SAML?", "Does Ledgerly support OIDC?"),
        ("Who founded Warsaw University?", "Who founded Krakow University?"),
    ],
)
def test_names_acronyms_and_codes_make_another_question(cached: str, asked: str) -> None:
    assert questions_agree(cached, asked) == "entity"


def test_a_name_needs_no_capital_to_be_the_same_name() -> None:
    assert questions_agree(
        "What is included in the Growth plan?", "What is included in the growth plan?"
    ) == ("agree")


def test_an_acronym_counts_even_when_it_spells_a_common_word() -> None:
    assert questions_agree("Who was the US president?", "Who was the president?") == "entity"


def test_a_question_in_capitals_is_read_as_words() -> None:
    assert questions_agree("How long do refunds take?", "HOW LONG DO REFUNDS TAKE?") == "agree"


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("Who can export invoices?", "When can I export invoices?"),
        ("Where are invoices stored?", "Why are invoices stored?"),
        ("How long do refunds take?", "How often do refunds take?"),
        ("How many invoices can I send?", "How much invoices can I send?"),
        ("Can I delete a workspace?", "How can I delete a workspace?"),
    ],
)
def test_the_question_word_makes_another_question(cached: str, asked: str) -> None:
    assert questions_agree(cached, asked) == "question_word"


def test_which_asks_what_what_asks() -> None:
    assert questions_agree("Which plan includes SSO?", "What plan includes SSO?") == "agree"


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("How long do refunds take?", "How long do refunds take to arrive?"),
        ("What is the ideal duty of an engine?", "What is the average duty of an engine?"),
        ("When is the correlation positive?", "When is the correlation negative?"),
        # Counted: "steam" twice is not "steam" and "engines".
        (
            "What type of steam engine needs valves to direct steam?",
            "What type of steam engine needs valves to direct engines?",
        ),
    ],
)
def test_an_added_dropped_or_changed_content_word_makes_another_question(
    cached: str, asked: str
) -> None:
    assert questions_agree(cached, asked) == "content_words"


def test_a_preposition_that_assigns_a_role_is_a_content_word() -> None:
    assert questions_agree(
        "Where did the Huguenots move from?", "Where did the Huguenots move to?"
    ) == ("content_words")
    assert questions_agree("Who did Tesla work for?", "Who did Tesla work with?") == (
        "content_words"
    )


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        (
            "What mechanism moves coal from a bunker to the firebox?",
            "What mechanism moves coal from a firebox to a bunker?",
        ),
        (
            "How many days does the council have to override the mayor's veto?",
            "How many days does the mayor have to override the council's veto?",
        ),
    ],
)
def test_the_same_words_in_another_order_make_another_question(cached: str, asked: str) -> None:
    assert questions_agree(cached, asked) == "word_order"


@pytest.mark.parametrize(
    "asked",
    [
        "So, how long do refunds take?",
        "Quick question: how long do refunds take?",
        "Hi there, how long do refunds take? Thanks",
        "Good morning, how long do refunds take? Thank you",
        "Sorry, how long do refunds take?!",
        "Please, how long do refunds take? please",
        "how long do REFUNDS take ??",
        "OK, how long do refunds take... ?",
        "How long do refunds usually take?",  # a hedge, not a new condition
        "How long does a refund take?",  # number and tense endings
        "How long will refunds take?",
    ],
)
def test_greetings_thanks_hedges_and_endings_do_not_change_the_question(asked: str) -> None:
    assert questions_agree("How long do refunds take?", asked) == "agree"


def test_a_paraphrase_keeps_names_codes_and_numbers_agreeing() -> None:
    cached = "Is SAML single sign-on available on the Growth plan for 25 users?"

    asked = "Hello, is SAML single sign-on available on the Growth plan for 25 users? Thanks"

    assert questions_agree(cached, asked) == "agree"


def test_a_question_inside_an_opener_is_still_read() -> None:
    # Only greetings and discourse words are stripped; an opening clause with content stays.
    assert questions_agree("In 2019, who ran Ledgerly?", "Who ran Ledgerly?") == "number"


def test_agreement_is_symmetric_and_every_reason_is_a_known_one() -> None:
    pairs = [
        ("Who can request a refund?", "Who cannot request a refund?"),
        ("What happens before the trial ends?", "What happens after the trial ends?"),
        ("Does the Growth plan include SSO?", "Does the Starter plan include SSO?"),
        ("How long do refunds take?", "How long do refunds take to arrive?"),
    ]
    for a, b in pairs:
        reason = questions_agree(a, b)
        assert reason == questions_agree(b, a)
        assert reason in DISAGREEMENTS
