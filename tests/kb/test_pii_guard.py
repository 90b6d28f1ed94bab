"""PII redaction: each recogniser, redaction and restoring, the log filter, the evaluation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from django.core.management import call_command

from kb.guard.pii import PiiLogFilter, PiiSpan, pii_find, pii_redact, pii_restore

PII_SAMPLES = Path(__file__).resolve().parents[1] / "data/pii_samples.json"


def found(text: str) -> list[tuple[str, str]]:
    return [(span.entity_type, span.text) for span in pii_find(text)]


# --- e-mail --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, email",
    [
        ("Write to billing@ledgerly.example.", "billing@ledgerly.example"),
        ("<John.Doe+invoices@mail.example.co.uk>", "John.Doe+invoices@mail.example.co.uk"),
        ("What's your email? LeaVLind@superrito.com", "LeaVLind@superrito.com"),
    ],
)
def test_it_finds_email_addresses(text, email) -> None:
    assert found(text) == [("EMAIL_ADDRESS", email)]


@pytest.mark.parametrize("text", ["ask @ledgerly on social media", "user@localhost", "a@b.c"])
def test_things_with_an_at_sign_are_not_email_addresses(text) -> None:
    assert found(text) == []


# --- phone numbers -------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+44 20 7946 0958",
        "+1-944-435-4352x04732",
        "(555) 123-4567",
        "555-123-4567 ext. 12",
        "986.291.2294",
        "020 7946 0958",
        "06 12 34 56 78",
        "01.23.45.67.89",
        "+4915112345678",
        "(07) 5331 0577",
    ],
)
def test_it_finds_phone_numbers_in_international_and_national_formats(phone) -> None:
    assert found(f"Please call {phone} tomorrow.") == [("PHONE_NUMBER", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "It was founded in 1998 and sold in 2012.",
        "From 1990-2020 the rate doubled.",
        "Invoice 2024-00123 is overdue.",
        "Order no. 1234-5678 has shipped.",
        "Order #4471 8834 ships today.",
        "The Growth plan costs $59 per month, the total is 12 345 678 euros.",
        "Upgrade to version 10.0.19041.1234 first.",
        "Born on 1986-12-27, moved on 15.01.2024, left on 12/27/1986.",
        "Open 10:30:15 to 18:00.",
        "ZIP: 11164",
        "46 velký průhon 426, opocnice",
        "Canada 32586\nMobile",
        "My driver's license number is 481195160",
    ],
)
def test_years_prices_versions_dates_and_reference_numbers_are_not_phone_numbers(text) -> None:
    assert found(text) == []


# --- payment cards -------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "5213591727586604", "3782 822463 10005"],
)
def test_it_finds_luhn_valid_card_numbers_with_or_without_separators(card) -> None:
    assert found(f"my card {card}, expires 09/27") == [("CREDIT_CARD", card)]


@pytest.mark.parametrize(
    "text",
    [
        "my card 4111 1111 1111 1112",  # Luhn fails
        "my card 5213591727586605",  # Luhn fails
        "tracking 1000000000000008",  # Luhn passes, but no issuer starts with 1
        "order 4111111111111111222222",  # too long: some other identifier
    ],
)
def test_numbers_that_fail_the_card_checks_are_not_cards(text) -> None:
    assert [kind for kind, _ in found(text)] == []


# --- IBAN ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban", ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "NL91ABNA0417164300"]
)
def test_it_finds_ibans_grouped_or_compact(iban) -> None:
    assert found(f"IBAN: {iban} BIC ABNANL2A") == [("IBAN_CODE", iban)]


def test_an_iban_ends_at_its_country_length_even_before_capitals() -> None:
    assert found("DE89 3704 0044 0532 0130 00 AND GB82WEST12345698765432") == [
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
        ("IBAN_CODE", "GB82WEST12345698765432"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "IBAN DE89 3704 0044 0532 0130 01",  # mod-97 fails
        "IBAN NL91ABNA04171643",  # too short for NL
        "code XX89370400440532013000",  # no such country
    ],
)
def test_invalid_ibans_are_not_ibans(text) -> None:
    assert [kind for kind, _ in found(text)] == []


# --- US SSN --------------------------------------------------------------------


@pytest.mark.parametrize("ssn", ["531-21-7351", "123 45 6788"])
def test_it_finds_social_security_numbers(ssn) -> None:
    assert found(f"His social security number is {ssn}.") == [("US_SSN", ssn)]


@pytest.mark.parametrize(
    "ssn",
    ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "078-05-1120"],
)
def test_numbers_the_ssa_never_issues_are_not_ssns(ssn) -> None:
    assert "US_SSN" not in [kind for kind, _ in found(f"SSN {ssn}")]


def test_nine_bare_digits_are_not_an_ssn() -> None:
    assert found("My driver's license number is 481195160") == []


# --- IP addresses --------------------------------------------------------------


@pytest.mark.parametrize(
    "ip", ["58.74.121.78", "192.168.0.1", "2001:db8::8a2e:370:7334", "fe80::1", "::ffff:10.0.0.1"]
)
def test_it_finds_ipv4_and_ipv6_addresses(ip) -> None:
    assert found(f"blocked from {ip}, again") == [("IP_ADDRESS", ip)]


def test_an_ip_address_at_the_end_of_a_sentence_leaves_the_full_stop() -> None:
    assert found("Blocked IP 10.1.2.3.") == [("IP_ADDRESS", "10.1.2.3")]


@pytest.mark.parametrize(
    "text", ["bad 256.1.1.1 value", "at 12:30:45 sharp", "ratio 3:4", "version 1.2.3", "1.2.3.4.5"]
)
def test_invalid_addresses_clock_times_and_versions_are_not_ip_addresses(text) -> None:
    assert found(text) == []


# --- spans, redaction, restoring -----------------------------------------------


def test_spans_are_ordered_non_overlapping_and_point_into_the_text() -> None:
    text = "Card 4532276644577020, mail a@ledgerly.example, call (555) 123-4567 from 10.0.0.7"

    spans = pii_find(text)

    assert [span.entity_type for span in spans] == [
        "CREDIT_CARD",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "IP_ADDRESS",
    ]
    assert all(text[span.start : span.end] == span.text for span in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))
    assert spans[0] == PiiSpan("CREDIT_CARD", 5, 21, "4532276644577020")


def test_redaction_round_trip_with_a_mapping_shared_by_the_texts_of_one_prompt() -> None:
    mapping: dict[str, str] = {}
    question = pii_redact(
        "Refund card 4111 1111 1111 1111 and mail ann@example.com", mapping=mapping
    )
    passage = pii_redact(
        "ANN@example.com paid with 4111-1111-1111-1111; the desk is +1 555 123 4567.",
        mapping=mapping,
    )

    assert question.text == "Refund card [CARD_1] and mail [EMAIL_1]"
    assert passage.text == "[EMAIL_1] paid with [CARD_1]; the desk is [PHONE_1]."
    assert mapping == {
        "[CARD_1]": "4111 1111 1111 1111",
        "[EMAIL_1]": "ann@example.com",
        "[PHONE_1]": "+1 555 123 4567",
    }
    assert question.placeholders is mapping

    answer = "I wrote to [EMAIL_1] about [CARD_1]; [EMAIL_2] is not known."
    assert pii_restore(answer, mapping) == (
        "I wrote to ann@example.com about 4111 1111 1111 1111; [EMAIL_2] is not known."
    )


def test_placeholders_count_up_per_type_and_a_text_without_pii_is_unchanged() -> None:
    redaction = pii_redact("a@example.com, b@example.com, a@example.com, 10.0.0.1")

    assert redaction.text == "[EMAIL_1], [EMAIL_2], [EMAIL_1], [IP_1]"
    assert pii_redact("Nothing personal here.").text == "Nothing personal here."
    assert pii_redact("Nothing personal here.").placeholders == {}


# --- logs ----------------------------------------------------------------------


def test_the_log_filter_redacts_messages_arguments_and_tracebacks(caplog) -> None:
    logger = logging.getLogger("tests.pii")
    pii_filter = PiiLogFilter()
    caplog.handler.addFilter(pii_filter)
    try:
        with caplog.at_level(logging.INFO, logger="tests.pii"):
            logger.info("question from %s about card %s", "ann@example.com", "4111111111111111")
            logger.info("ip %(ip)s", {"ip": "58.74.121.78"})
            try:
                raise ValueError("bad SSN 531-21-7351")
            except ValueError:
                logger.exception("failed")
    finally:
        caplog.handler.removeFilter(pii_filter)

    assert caplog.messages[:2] == ["question from [EMAIL_1] about card [CARD_1]", "ip [IP_1]"]
    assert "531-21-7351" not in caplog.text
    assert "[SSN_1]" in caplog.text
    assert "ann@example.com" not in caplog.text
    assert "4111111111111111" not in caplog.text


# --- evaluation ----------------------------------------------------------------

# Measured on the 100 sentences: every covered type 1.00 precision and recall
# (2 e-mails, 10 cards, 3 SSNs, 2 IPs, 10 phones, no IBAN). The floors leave room
# for one miss or one false alarm per type, not for a regression.
FLOORS = {
    "EMAIL_ADDRESS": 1.0,
    "CREDIT_CARD": 0.9,
    "US_SSN": 1.0,
    "IP_ADDRESS": 1.0,
    "PHONE_NUMBER": 0.9,
}


def test_guard_eval_pii_reports_precision_and_recall_per_entity_type(tmp_path, capsys) -> None:
    call_command("guard_eval", "pii", str(PII_SAMPLES), json=tmp_path / "r.json")

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rows"] == 100
    for entity_type, floor in FLOORS.items():
        score = report["entity_types"][entity_type]
        assert score["gold"] > 0, entity_type
        assert score["precision"] >= floor, (entity_type, score)
        assert score["recall"] >= floor, (entity_type, score)
        assert score["overlap_recall"] >= score["recall"]
    assert report["total"]["precision"] >= 0.95
    assert report["total"]["recall"] >= 0.95
    assert report["entity_types"]["IBAN_CODE"]["gold"] == 0
    assert report["entity_types"]["IBAN_CODE"]["predicted"] == 0
    assert {"PERSON", "ADDRESS", "LOCATION"} <= set(report["not_detected"])

    printed = capsys.readouterr().out
    assert "PHONE_NUMBER" in printed
    assert "Not detected" in printed and "PERSON" in printed
