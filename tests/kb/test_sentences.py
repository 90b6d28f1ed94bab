"""Specification of the rule-based sentence splitter the chunker cuts long blocks with.

Pure functions, no database.
"""

from __future__ import annotations

import random

import pytest

from kb.sentences import line_spans, sentence_spans, word_spans


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Refunds take 5 days. Credits never expire! Is that clear? Yes.",
            ["Refunds take 5 days.", "Credits never expire!", "Is that clear?", "Yes."],
            id="terminators",
        ),
        pytest.param(
            "Use a tool, e.g. the CLI. Pick one, i.e. any. Fruit, etc. are fine. Done.",
            ["Use a tool, e.g. the CLI.", "Pick one, i.e. any.", "Fruit, etc. are fine.", "Done."],
            id="latin-abbreviations",
        ),
        pytest.param(
            "Dr. Smith met Mr. Jones vs. Acme Inc. on Jan. 5. They talked.",
            ["Dr. Smith met Mr. Jones vs. Acme Inc. on Jan. 5.", "They talked."],
            id="titles-and-companies",
        ),
        pytest.param(
            "The U.S. market grew. It did.",
            ["The U.S. market grew.", "It did."],
            id="initialism",
        ),
        pytest.param(
            "Prices rose 4.2% to $8.00 in 2024. Release v4.2.1 fixed it. Next.",
            ["Prices rose 4.2% to $8.00 in 2024.", "Release v4.2.1 fixed it.", "Next."],
            id="decimals-and-versions",
        ),
        pytest.param(
            "See https://example.com/a.b?c=d. Mail billing@ledgerly.example. Open report.pdf now.",
            [
                "See https://example.com/a.b?c=d.",
                "Mail billing@ledgerly.example.",
                "Open report.pdf now.",
            ],
            id="urls-emails-file-names",
        ),  # fmt: skip
        pytest.param(
            "See No. 5 for details. The answer is No. It works.",
            ["See No. 5 for details.", "The answer is No.", "It works."],
            id="number-abbreviation",
        ),
        pytest.param(
            'He said "Wait... What now?" and left. I paused... Then I left.',
            ['He said "Wait... What now?" and left.', "I paused...", "Then I left."],
            id="ellipsis-inside-quotes",
        ),
        pytest.param(
            "Er sagte „Na ja… Vielleicht“ und ging. Dann regnete es.",
            ["Er sagte „Na ja… Vielleicht“ und ging.", "Dann regnete es."],
            id="ellipsis-inside-german-quotes",
        ),
        pytest.param(
            "1. Sign in as the Owner.\n2. Go to Settings.\n3. Click Cancel.",
            ["1. Sign in as the Owner.", "2. Go to Settings.", "3. Click Cancel."],
            id="numbered-items",
        ),
        pytest.param(
            "You can:\n- view data\n- export data\nand nothing else",
            ["You can:", "- view data", "- export data\nand nothing else"],
            id="line-breaks-in-lists",
        ),
        pytest.param(
            "The first paragraph\n\nThe second one",
            ["The first paragraph", "The second one"],
            id="blank-line",
        ),
        pytest.param(
            "a wrapped\nline of a PDF. Continues here.",
            ["a wrapped\nline of a PDF.", "Continues here."],
            id="soft-line-break",
        ),
        pytest.param(
            "Smith et al. found this. J. R. R. Tolkien wrote it. J. S. Bach too, see p. 4.",
            ["Smith et al. found this.", "J. R. R. Tolkien wrote it.", "J. S. Bach too, see p. 4."],
            id="initials",
        ),
        pytest.param(
            "He left (see Fig. 3). Then he came back.",
            ["He left (see Fig. 3).", "Then he came back."],
            id="brackets",
        ),
        pytest.param(
            "Das ist z.B. gut. Am 3. Oktober ist Feiertag. Der Hund bellt.",
            ["Das ist z.B. gut.", "Am 3. Oktober ist Feiertag.", "Der Hund bellt."],
            id="german",
        ),
        pytest.param(
            "C'est la vie. « Bonjour ! » Il est parti. M. Dupont est là.",
            ["C'est la vie.", "« Bonjour ! »", "Il est parti.", "M. Dupont est là."],
            id="french",
        ),
        pytest.param(
            "今天天气很好。我们去公园吧！好的？",
            ["今天天气很好。", "我们去公园吧！", "好的？"],
            id="cjk-full-stop",
        ),
        pytest.param(
            "The value is 3. then it is 4. Lower case does not start a sentence.",
            ["The value is 3. then it is 4.", "Lower case does not start a sentence."],
            id="lower-case-continuation",
        ),
        pytest.param(
            "The end is near. **Bold** starts the next one.",
            ["The end is near.", "**Bold** starts the next one."],
            id="markdown-emphasis",
        ),
    ],
)
def test_sentence_boundaries(text: str, expected: list[str]) -> None:
    # Given prose, when it is split, then these are its sentences.
    assert sentences(text) == expected


def test_no_text_no_sentences() -> None:
    assert sentence_spans("") == []
    assert sentence_spans(" \n\t ") == []


def test_spans_are_stripped_and_point_into_the_text() -> None:
    # Given text with surrounding whitespace
    text = "  First one.   Second one.\n\n  "
    # When split, then the spans exclude the whitespace
    assert sentence_spans(text) == [(2, 12), (15, 26)]


def test_spans_cover_every_visible_character_of_random_text() -> None:
    # Given random text made of sentence-ish material
    rng = random.Random(7)
    vocabulary = 'Word word e.g. 4.2 U.S. 3. ... … ? ! " « » 。 文字 - 1. ( ) Dr. v1.2'.split()
    vocabulary += ["\n", "\n\n", "\n- ", "\n2. "]
    for _ in range(300):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 40)))
        # When split
        spans = sentence_spans(text)
        # Then spans are ordered, disjoint, stripped and cover all non-whitespace
        covered = [False] * len(text)
        previous_end = 0
        for start, end in spans:
            assert previous_end <= start < end
            assert not text[start].isspace() and not text[end - 1].isspace()
            covered[start:end] = [True] * (end - start)
            previous_end = end
        assert all(covered[i] or char.isspace() for i, char in enumerate(text))


def test_lines_of_code() -> None:
    # Given code, when split into lines, then blank lines disappear and indentation stays
    # outside the span only at the start of a line.
    code = "def f():\n    return 1\n\nprint(f())"
    assert [code[s:e] for s, e in line_spans(code)] == ["def f():", "return 1", "print(f())"]


def test_words_of_a_region() -> None:
    # Given a text and a region of it, when split into words, then spans point into the text
    text = "ab cd  ef gh"
    assert word_spans(text, 3, 9) == [(3, 5), (7, 9)]
    assert [text[s:e] for s, e in word_spans(text)] == ["ab", "cd", "ef", "gh"]
