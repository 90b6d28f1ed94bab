"""Model output is untrusted: however it is split across stream events, it renders inert."""

from __future__ import annotations

from html.parser import HTMLParser

from chat.rendering import CitationLink, answer_html, streamed_text_html
from tests.support.fake_llm import split_text

HOSTILE = (
    'Here you go <script>alert("x")</script> and <img src=x onerror="alert(1)"> '
    'plus [a link](javascript:alert(1)) and <a href="javascript:alert(2)">raw</a> '
    "and <iframe src=//evil.example></iframe> [1]"
)
LINKS = {1: CitationLink("/documents/3/?chunk=7#chunk-7", 'Billing "Plans"')}


class _Elements(HTMLParser):
    """The elements a browser would build from the HTML, with their attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def _no_active_content(html: str) -> None:
    elements = _Elements(html).found
    assert not [tag for tag, _ in elements if tag in {"script", "img", "iframe", "style"}]
    for tag, attrs in elements:
        assert not [name for name in attrs if name.startswith("on")], tag
        assert not attrs.get("href", "").strip().lower().startswith("javascript"), attrs


def test_streamed_pieces_are_escaped_whatever_the_split() -> None:
    for parts in (1, 7, 40, len(HOSTILE)):
        pieces = [streamed_text_html(piece) for piece in split_text(HOSTILE, parts)]

        joined = "".join(pieces)
        assert "<" not in joined and ">" not in joined
        assert joined.count("&lt;script&gt;") == 1


def test_the_final_answer_keeps_markdown_and_drops_active_content() -> None:
    html = str(
        answer_html(
            "**Bold** and a [safe link](https://ledgerly.example/help)\n\n" + HOSTILE, LINKS
        )
    )

    _no_active_content(html)
    assert "<strong>Bold</strong>" in html
    assert (
        'href="https://ledgerly.example/help"' in html
        and 'rel="noopener noreferrer nofollow"' in html
    )
    assert "&lt;script&gt;" in html  # shown as text, not run


def test_citation_markers_become_chips_and_unknown_ones_vanish() -> None:
    html = str(answer_html("Growth costs $59 [1]. Invented [4]. Unchecked. [?]", LINKS))

    assert html.count('class="cite"') == 1
    assert 'href="/documents/3/?chunk=7#chunk-7"' in html
    assert 'title="Billing &quot;Plans&quot;"' in html
    assert "[4]" not in html
    assert 'class="unsupported-note"' in html and "not found in the sources" in html


MARKED = (
    "Here is what I found:\n\n"
    "- Growth costs $59 [1].\n"
    "- Ledgerly has an **iOS** app. [?]\n\n"
    "Refunds are paid *in cash* at the office. [?]"
)


def _span(text: str, sentence: str) -> tuple[int, int]:
    start = text.index(sentence)
    return start, start + len(sentence)


def test_unsupported_sentences_are_dimmed_and_followed_by_a_note_in_words() -> None:
    spans = [
        _span(MARKED, "- Ledgerly has an **iOS** app."),
        _span(MARKED, "Refunds are paid *in cash* at the office."),
    ]

    html = str(answer_html(MARKED, LINKS, spans))

    assert (
        '<li><span class="unsupported">Ledgerly has an <strong>iOS</strong> app.</span> '
        '<span class="unsupported-note"'
    ) in html
    assert (
        '<p><span class="unsupported">Refunds are paid <em>in cash</em> at the office.</span>'
        in html
    )
    assert html.count('class="unsupported"') == 2
    assert html.count("not found in the sources") == 2
    assert html.count('<span class="sr-only">This sentence was </span>') == 2
    assert '<li>Growth costs $59 <a class="cite"' in html  # the supported one as before
    _no_active_content(html)


def test_a_sentence_crossing_an_inline_element_still_renders_well_formed() -> None:
    text = "**Bold start. Bold end** and more. [?]"

    html = str(answer_html(text, LINKS, [_span(text, "Bold end** and more.")]))

    assert html.count("<span") == html.count("</span>")
    assert html.count("<strong>") == html.count("</strong>") == 1


def test_spans_that_do_not_fit_the_text_mark_nothing() -> None:
    html = str(answer_html("Short. [?]", LINKS, [(3, 400), (-1, 2), (5, 5)]))

    assert 'class="unsupported"' not in html and "not found in the sources" in html


def test_the_marks_characters_in_the_text_itself_are_ignored() -> None:
    html = str(answer_html("A \ue000sneaky\ue001 one.", LINKS, [(0, 2)]))

    assert html.count('class="unsupported"') == 1 and "\ue000" not in html
