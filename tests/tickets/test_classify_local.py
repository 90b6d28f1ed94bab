"""The local ticket classifier: cross-validated figures, urgency cues, the cache."""

from __future__ import annotations

import pytest

from llm.models import LlmCall
from tests.factories import make_account
from tickets.classification import classify
from tickets.classification.cache import classification_cache_key
from tickets.classification.cues import urgency_cues
from tickets.classification.evaluation import LABELLED_SET, cross_validate
from tickets.classification.examples import labelled_tickets_load
from tickets.models import ClassificationCacheEntry, TicketSettings

CATEGORIES = ("billing", "technical", "account", "other")


def test_the_labelled_set_is_large_varied_and_balanced() -> None:
    tickets = labelled_tickets_load(LABELLED_SET)

    assert len(tickets) >= 240
    counts = {c: sum(t.category == c for t in tickets) for c in CATEGORIES}
    assert min(counts.values()) >= 0.2 * len(tickets), counts
    assert sum(t.urgency == "urgent" for t in tickets) >= 40
    assert {t.sentiment for t in tickets} == {"negative", "neutral", "positive"}
    assert len({" ".join(t.text.split()).casefold() for t in tickets}) == len(tickets)


def test_held_out_category_accuracy_and_urgent_recall_clear_the_targets() -> None:
    # Given 5-fold cross-validation (every figure from tickets the fit never saw)
    result = cross_validate(folds=5, seed=20)

    # Then the pooled held-out figures clear the targets
    assert result.pooled.tickets >= 240
    assert result.pooled.category_accuracy >= 0.85, result.pooled
    assert result.pooled.urgent_recall >= 0.9, result.pooled
    assert len(result.folds) == 5


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("The dashboard has been offline since lunch.", "outage"),
        ("I'm locked out and the reset link never comes.", "access"),
        ("All of last year's records were wiped overnight.", "data_loss"),
        ("There was an unauthorised sign-in from abroad.", "security"),
        ("Our regulator wants the report by end of day.", "deadline"),
        ("Please look at this asap.", "immediacy"),
        ("It affects everyone in production.", "scope"),
        ("We were double-charged for the annual plan.", "money"),
        ("No rush, just wondering about the roadmap.", "calm"),
    ],
)
def test_urgency_cue_groups_read_general_language(text: str, group: str) -> None:
    assert urgency_cues(text)[group]


def test_an_ordinary_question_shows_no_cue_of_harm() -> None:
    cues = urgency_cues("How do I change the logo shown on my invoices?")

    assert not any(on for name, on in cues.items() if name != "calm")


def test_cache_key_ignores_spacing_and_case_but_not_the_categories() -> None:
    key = classification_cache_key("Refund  please\n", CATEGORIES)

    assert key == classification_cache_key("refund please", CATEGORIES)
    assert key != classification_cache_key("refund please", (*CATEGORIES, "shipping"))
    assert len(key) == 64


@pytest.mark.django_db
def test_with_no_provider_the_local_classifier_answers_and_is_ledgered() -> None:
    account = make_account()

    result = classify(
        account=account,
        text="Our whole company is locked out of the app since this morning, nobody can log in!",
        request_id="req-local",
    )

    assert result.classified_by == "local" and not result.cached
    assert result.category in CATEGORIES
    assert result.urgency == "urgent"
    assert 0 <= result.confidence <= 1
    row = LlmCall.objects.get(request_id="req-local", feature="ticket_classify")
    assert (row.provider, row.model, row.fallback_used, row.cost) == (
        "local", "nearest-centroid", False, 0,
    )  # fmt: skip
    assert TicketSettings.objects.filter(account=account).exists()


@pytest.mark.django_db
def test_identical_text_is_served_from_the_accounts_cache() -> None:
    account, other = make_account(), make_account()
    text = "Please send me the invoice for March with our VAT number on it."
    first = classify(account=account, text=text, request_id="req-1")

    again = classify(account=account, text="  please send me the invoice for march "
                     "with our VAT number on it.", request_id="req-2")  # fmt: skip
    elsewhere = classify(account=other, text=text, request_id="req-3")

    assert again.cached and (again.category, again.urgency) == (first.category, first.urgency)
    assert not LlmCall.objects.filter(request_id="req-2").exists()
    assert not elsewhere.cached  # per account
    assert ClassificationCacheEntry.objects.filter(account=account).count() == 1


@pytest.mark.django_db
def test_a_custom_category_without_examples_can_be_chosen() -> None:
    account = make_account()
    TicketSettings.objects.create(account=account, categories=["billing", "shipping", "other"])

    result = classify(
        account=account,
        text="My parcel never arrived, the shipping tracking number shows it stuck at the "
        "courier's depot for two weeks.",
    )

    assert result.category == "shipping"
