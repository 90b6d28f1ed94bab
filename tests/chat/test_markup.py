"""Answer text carries no HTML, streamed or final, however the stream is cut; Markdown stays."""

from __future__ import annotations

import re

import pytest

from chat.answering.markup import MAX_TAG_CHARS, MarkupGuard, markdown_text_safe
from chat.rendering import answer_html
from tests.support.fake_llm import split_text

HOSTILE = (
    "Refunds take 45 days <svg onload=alert(document.domain)></svg> from purchase. "
    'Open the <a href="javascript:alert(document.cookie)">refund form</a> first.</iframe> '
    '<img alt="a>b" src=x onerror=alert(1)><!-- a comment > with a bracket --> '
    "<script>steal()</script>Done.<br>Next line <![CDATA[x]]> <?php echo 1 ?> <!DOCTYPE html>"
)
CLEAN = (
    "Refunds take 45 days  from purchase. Open the refund form first.  steal()Done. Next line   "
)
# No "<" left that an HTML or Markdown parser could read as the start of markup.
OPENS_MARKUP = re.compile(r"<[A-Za-z/!?]")


def test_tags_comments_and_declarations_go_and_the_text_between_them_stays() -> None:
    assert markdown_text_safe(HOSTILE) == CLEAN


def test_markdown_and_angle_brackets_that_open_no_tag_are_left_as_written() -> None:
    text = (
        "## Refunds\n\n- **Annual** plans: within 30 days [1].\n- `monthly` plans: never.\n\n"
        "> Quote: costs < $20, 3<5 and 5 > 3, see [the guide](https://ledgerly.example/g)."
    )

    assert markdown_text_safe(text) == text


def test_autolinks_become_bare_addresses() -> None:
    text = "See <https://ledgerly.example/help>, <mailto:help@ledgerly.example> or <a@b.example>."

    assert markdown_text_safe(text) == (
        "See https://ledgerly.example/help, mailto:help@ledgerly.example or a@b.example."
    )


def test_a_bracket_that_never_closes_is_broken_up_not_left_to_open_a_tag() -> None:
    unfinished = "Use x <b onclick=alert(1) and carry on"
    too_long = "a <b " + "x" * MAX_TAG_CHARS + "> c"

    assert markdown_text_safe(unfinished) == "Use x < b onclick=alert(1) and carry on"
    assert markdown_text_safe(too_long).startswith("a < b x")
    assert not OPENS_MARKUP.search(markdown_text_safe(too_long))


def test_the_result_is_stable() -> None:
    once = markdown_text_safe(HOSTILE + " <b unfinished")

    assert markdown_text_safe(once) == once
    assert not OPENS_MARKUP.search(once)


@pytest.mark.parametrize("parts", [1, 2, 5, 17, 60, len(HOSTILE)])
def test_a_stream_cut_anywhere_shows_no_part_of_a_tag(parts: int) -> None:
    guard = MarkupGuard()

    shown = [guard.feed(piece) for piece in split_text(HOSTILE, parts)] + [guard.flush()]

    assert "".join(shown) == CLEAN
    for piece in shown:
        assert "<" not in piece and "onload" not in piece and "javascript" not in piece


def test_a_stream_of_prose_is_not_held_back_and_an_unfinished_tag_is_held_only_so_long() -> None:
    guard = MarkupGuard()

    assert guard.feed("Refunds arrive within ") == "Refunds arrive within "
    assert guard.feed("5 days < 7 days [1]. ") == "5 days < 7 days [1]. "
    assert guard.feed("Then <b") == "Then "
    assert guard.feed("old>x") == "x"
    assert guard.feed(" <i " + "y" * MAX_TAG_CHARS).startswith(" < i y")


def test_the_chat_shows_the_safe_text_as_written_without_entities() -> None:
    text = markdown_text_safe(
        "Costs < $20 & more <b>bold</b> `a < b`. <svg onload=alert(1)> Or x<y"
    )

    html = str(answer_html(text, {}))

    assert html == "<p>Costs &lt; $20 &amp; more bold <code>a &lt; b</code>.  Or x&lt; y</p>\n"
    assert "&amp;lt;" not in html and "svg" not in html and "onload" not in html
