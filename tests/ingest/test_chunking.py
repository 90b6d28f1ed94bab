"""Specification of the semantic chunker.

Most tests count one token per whitespace-separated word, so sizes can be
reasoned about by eye; the tests on the demo documents and the random documents
use the embedding model's real tokenizer. Pure functions, no database.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from ingest.chunking import (
    ChunkDraft,
    ChunkingOptions,
    _tokenizer_is_bert_word_piece,
    chunk_document,
    count_word_pieces,
    embedding_input,
)
from ingest.parsing.base import Block, BlockKind, ParsedDocument
from kb.embeddings.tokens import MODEL_MAX_TOKENS, SPECIAL_TOKENS, count_tokens

DEMO_DOCUMENTS = Path(__file__).resolve().parents[2] / "kb" / "demo" / "documents"


def words(text: str) -> int:
    """A counter to reason with: one token per word."""
    return len(text.split())


def characters(text: str) -> int:
    """A counter that is not additive: the separators between blocks count too."""
    return len(text)


def heading(text: str, level: int = 1, page: int | None = None) -> Block:
    return Block(BlockKind.HEADING, text, level=level, page=page)


def paragraph(text: str, page: int | None = None) -> Block:
    return Block(BlockKind.PARAGRAPH, text, page=page)


def item(text: str) -> Block:
    return Block(BlockKind.LIST_ITEM, text, level=1)


def row(text: str) -> Block:
    return Block(BlockKind.TABLE_ROW, text)


def sentence(number: int, length: int = 10) -> str:
    """A sentence of exactly ``length`` words that says which one it is."""
    return " ".join([f"Sentence{number}"] + ["word"] * (length - 2) + ["end."])


def plain(max_tokens: int, overlap_tokens: int = 0) -> ChunkingOptions:
    """Options without the heading-path reservation, so budgets are exactly max_tokens."""
    return ChunkingOptions(
        max_tokens=max_tokens, overlap_tokens=overlap_tokens, reserve_heading_path=False
    )


def assert_chunk_invariants(
    parsed: ParsedDocument,
    chunks: list[ChunkDraft],
    *,
    max_tokens: int,
    count: Callable[[str], int],
) -> None:
    """What holds for every chunking: exact slices, bounded size, full coverage, order."""
    text = parsed.text
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    covered = [False] * len(text)
    for chunk in chunks:
        assert chunk.text == text[chunk.char_start : chunk.char_end]
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.token_count == count(chunk.text)
        assert chunk.token_count <= max_tokens, chunk
        covered[chunk.char_start : chunk.char_end] = [True] * len(chunk.text)
    assert all(covered[i] or char.isspace() for i, char in enumerate(text)), "not covered"
    # Chunks advance: overlap never makes a chunk that repeats without adding text.
    for previous, following in zip(chunks, chunks[1:], strict=False):
        assert previous.char_start < following.char_start
        assert previous.char_end < following.char_end
    # No chunk crosses a heading: a heading can only be where a chunk begins, or right
    # after the bare parent heading(s) that open the chunk of their first sub-section.
    blocks = list(zip(parsed.block_offsets(), parsed.blocks, strict=True))
    for offset, block in blocks:
        if block.kind != BlockKind.HEADING:
            continue
        for chunk in chunks:
            if chunk.char_start < offset < chunk.char_end:
                before = [b for o, b in blocks if chunk.char_start <= o < offset and b.text.strip()]
                assert all(b.kind == BlockKind.HEADING for b in before), block
                assert all(a.level < b.level for a, b in pairwise([*before, block])), block


def markdown_document(path: Path) -> ParsedDocument:
    """A rough stand-in for the markdown parser, so these tests do not depend on it.

    Blank lines separate blocks; '#' lines are headings of level = number of '#';
    '|' lines are table rows; '-', '*' and '1.' lines are list items.
    """
    blocks: list[Block] = []
    for part in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
        part = part.strip()
        if not part:
            continue
        if match := re.fullmatch(r"(#{1,6})\s+(.+)", part):
            blocks.append(heading(match.group(2).strip(), level=len(match.group(1))))
            continue
        lines = [line.strip() for line in part.splitlines() if line.strip()]
        if all(line.startswith("|") for line in lines):
            blocks.extend(row(line) for line in lines)
        elif all(re.match(r"([-*]|\d+\.)\s", line) for line in lines):
            blocks.extend(item(line) for line in lines)
        else:
            blocks.append(paragraph(part))
    return ParsedDocument(blocks)


# --- structure --------------------------------------------------------------------


def test_empty_document_gives_no_chunks() -> None:
    assert chunk_document(ParsedDocument([])) == []


def test_heading_paths_nest_and_a_same_level_heading_replaces_its_sibling() -> None:
    # Given nested headings, a sibling, and a new top-level heading
    parsed = ParsedDocument(
        [
            paragraph("Before any heading."),
            heading("Billing", 1),
            paragraph("About billing."),
            heading("Refunds", 2),
            paragraph("About refunds."),
            heading("Enterprise plans", 3),
            paragraph("About enterprise refunds."),
            heading("Cancellation", 2),
            paragraph("About cancelling."),
            heading("Security", 1),
            paragraph("About security."),
        ]
    )
    # When chunked
    chunks = chunk_document(parsed, options=plain(100), count_tokens=words)
    # Then each chunk carries the path of the headings above it
    assert [(c.heading_path, c.text.splitlines()[0]) for c in chunks] == [
        ("", "Before any heading."),
        ("Billing", "Billing"),
        ("Billing > Refunds", "Refunds"),
        ("Billing > Refunds > Enterprise plans", "Enterprise plans"),
        ("Billing > Cancellation", "Cancellation"),
        ("Security", "Security"),
    ]
    assert_chunk_invariants(parsed, chunks, max_tokens=100, count=words)


def test_a_deeper_heading_after_a_skipped_level_keeps_the_path_consistent() -> None:
    # Given an h1 followed directly by an h3, then an h2
    parsed = ParsedDocument(
        [heading("A", 1), heading("C", 3), paragraph("c."), heading("B", 2), paragraph("b.")]
    )
    # When chunked, then the h2 replaces the h3 (and the bare "A" opens the first chunk)
    paths = [c.heading_path for c in chunk_document(parsed, count_tokens=words)]
    assert paths == ["A > C", "A > B"]


def test_a_bare_heading_opens_its_first_sub_sections_chunk() -> None:
    # Given a title with nothing under it but sub-sections
    parsed = ParsedDocument(
        [heading("Refunds", 2), heading("Starter", 3), paragraph("Within 14 days."),
         heading("Enterprise", 3), paragraph("Prorated.")]
    )  # fmt: skip
    # When chunked
    chunks = chunk_document(parsed, options=plain(100), count_tokens=words)
    # Then no chunk holds only a title: "Refunds" opens the first sub-section's chunk
    assert [(c.heading_path, c.text) for c in chunks] == [
        ("Refunds > Starter", "Refunds\n\nStarter\n\nWithin 14 days."),
        ("Refunds > Enterprise", "Enterprise\n\nProrated."),
    ]


def test_a_heading_starts_a_chunk_and_opens_it_with_its_own_text() -> None:
    # Given two short sections that would fit into one chunk together
    parsed = ParsedDocument(
        [heading("Refunds"), paragraph("Refunds take 5 days."), heading("Credits"),
         paragraph("Credits never expire.")]
    )  # fmt: skip
    # When chunked with plenty of room
    chunks = chunk_document(parsed, options=plain(100), count_tokens=words)
    # Then each heading begins its own chunk, which shows the section title
    assert [c.text for c in chunks] == [
        "Refunds\n\nRefunds take 5 days.",
        "Credits\n\nCredits never expire.",
    ]


def test_short_paragraphs_of_a_section_are_packed_while_they_fit() -> None:
    # Given a heading (1 word) and five paragraphs of 10 words
    parsed = ParsedDocument([heading("Intro")] + [paragraph(sentence(n)) for n in range(5)])
    # When chunked at 50 words
    chunks = chunk_document(parsed, options=plain(50), count_tokens=words)
    # Then the heading and four paragraphs (41 words) share a chunk; the fifth starts the next
    assert [c.token_count for c in chunks] == [41, 10]
    assert chunks[1].text == sentence(4)
    assert_chunk_invariants(parsed, chunks, max_tokens=50, count=words)


def test_a_heading_is_not_left_alone_when_its_paragraph_can_be_cut() -> None:
    # Given a heading and a paragraph that fits the budget, but not with the heading
    parsed = ParsedDocument(
        [heading("Refund rules"), paragraph(" ".join(sentence(n) for n in range(5)))]
    )
    # When chunked at 50 words
    chunks = chunk_document(parsed, options=plain(50), count_tokens=words)
    # Then the first chunk holds the heading and the first sentences, not the heading alone
    assert chunks[0].text.startswith("Refund rules\n\nSentence0")
    assert chunks[0].token_count == 2 + 40
    assert_chunk_invariants(parsed, chunks, max_tokens=50, count=words)


# --- sentences, words and overlap -------------------------------------------------


def long_paragraph_document(sentences: int = 12) -> ParsedDocument:
    return ParsedDocument([paragraph(" ".join(sentence(n) for n in range(sentences)))])


def sentence_starts(parsed: ParsedDocument) -> set[int]:
    return {match.start() for match in re.finditer(r"Sentence\d+", parsed.text)}


def test_a_long_paragraph_is_cut_between_sentences() -> None:
    # Given a paragraph of twelve 10-word sentences
    parsed = long_paragraph_document()
    # When chunked at 40 words without overlap
    chunks = chunk_document(parsed, options=plain(40), count_tokens=words)
    # Then every chunk is four whole sentences
    assert [c.token_count for c in chunks] == [40, 40, 40]
    for chunk in chunks:
        assert chunk.char_start in sentence_starts(parsed)
        assert chunk.text.endswith("end.")
    assert_chunk_invariants(parsed, chunks, max_tokens=40, count=words)


def test_without_overlap_the_chunks_of_a_paragraph_do_not_overlap() -> None:
    parsed = long_paragraph_document()
    chunks = chunk_document(parsed, options=plain(40, overlap_tokens=0), count_tokens=words)
    for previous, following in zip(chunks, chunks[1:], strict=False):
        assert following.char_start > previous.char_end


def test_a_continuation_chunk_starts_with_the_last_whole_sentences_of_the_previous() -> None:
    # Given a paragraph of twelve 10-word sentences
    parsed = long_paragraph_document()
    # When chunked at 40 words with up to 25 words of overlap
    chunks = chunk_document(parsed, options=plain(40, overlap_tokens=25), count_tokens=words)
    # Then each continuation repeats the previous chunk's last two sentences (20 <= 25)
    for previous, following in zip(chunks, chunks[1:], strict=False):
        repeated = parsed.text[following.char_start : previous.char_end]
        assert previous.text.endswith(repeated)
        assert words(repeated) == 20
        assert following.char_start in sentence_starts(parsed)
    assert_chunk_invariants(parsed, chunks, max_tokens=40, count=words)


def test_overlap_takes_only_whole_sentences() -> None:
    # Given 10-word sentences and an overlap allowance of 9 words
    parsed = long_paragraph_document()
    # When chunked, then no sentence fits the allowance and nothing is repeated
    chunks = chunk_document(parsed, options=plain(40, overlap_tokens=9), count_tokens=words)
    for previous, following in zip(chunks, chunks[1:], strict=False):
        assert following.char_start > previous.char_end


def test_overlap_does_not_cross_a_heading() -> None:
    # Given two sections that each need several chunks
    body = " ".join(sentence(n) for n in range(6))
    parsed = ParsedDocument([heading("One"), paragraph(body), heading("Two"), paragraph(body)])
    # When chunked with overlap
    chunks = chunk_document(parsed, options=plain(30, overlap_tokens=15), count_tokens=words)
    # Then the second section's first chunk starts at its heading
    second = next(c for c in chunks if c.heading_path == "Two")
    assert second.text.startswith("Two\n\n")
    assert second.char_start == parsed.block_offsets()[2]
    assert_chunk_invariants(parsed, chunks, max_tokens=30, count=words)


def test_a_sentence_longer_than_the_budget_is_cut_between_words() -> None:
    # Given one 100-word sentence
    text = " ".join(f"w{n}" for n in range(100)) + "."
    parsed = ParsedDocument([paragraph(text)])
    # When chunked at 30 words
    chunks = chunk_document(parsed, options=plain(30, overlap_tokens=10), count_tokens=words)
    # Then it is cut into 30-word pieces at word boundaries, without overlap
    assert [c.token_count for c in chunks] == [30, 30, 30, 10]
    for chunk in chunks:
        assert chunk.char_start == 0 or text[chunk.char_start - 1] == " "
    for previous, following in zip(chunks, chunks[1:], strict=False):
        assert following.char_start > previous.char_end
    assert_chunk_invariants(parsed, chunks, max_tokens=30, count=words)


def test_a_word_longer_than_the_budget_is_cut_between_characters() -> None:
    # Given a 500-character "word" and a counter of characters
    parsed = ParsedDocument([paragraph("start " + "x" * 500 + " end")])
    # When chunked at 100 characters
    chunks = chunk_document(parsed, options=plain(100), count_tokens=characters)
    # Then every piece fits
    assert_chunk_invariants(parsed, chunks, max_tokens=100, count=characters)


def test_a_character_over_the_budget_on_its_own_is_emitted_rather_than_looped_on() -> None:
    # Given a counter under which no single character fits the budget
    parsed = ParsedDocument([paragraph("ab cd")])
    # When chunked, then chunking ends, with one chunk per character
    chunks = chunk_document(parsed, options=plain(1), count_tokens=lambda text: 2 * len(text))
    assert [c.text for c in chunks] == ["a", "b", "c", "d"]


def test_a_counter_that_is_not_additive_still_gets_chunks_within_the_budget() -> None:
    # Given blocks whose separators cost tokens under the counter (characters)
    parsed = ParsedDocument([heading("Title")] + [paragraph("abcdefghi") for _ in range(30)])
    # When chunked at 50 characters, then the chunk's own count is what decides
    chunks = chunk_document(parsed, options=plain(50, overlap_tokens=9), count_tokens=characters)
    assert_chunk_invariants(parsed, chunks, max_tokens=50, count=characters)


# --- lists, tables, code ------------------------------------------------------------


def test_table_rows_are_kept_whole_and_a_split_table_repeats_nothing() -> None:
    # Given a table of twenty 8-word rows under a heading
    rows = [f"| row{n} | a | b | c | d | e | f |" for n in range(20)]
    parsed = ParsedDocument([heading("Prices")] + [row(r) for r in rows])
    # When chunked at 30 words with overlap enabled
    chunks = chunk_document(parsed, options=plain(30, overlap_tokens=10), count_tokens=words)
    # Then every chunk is a run of whole rows (after the heading) and nothing is repeated
    for chunk in chunks:
        parts = chunk.text.split("\n\n")
        assert all(part in rows for part in parts if part != "Prices")
    for previous, following in zip(chunks, chunks[1:], strict=False):
        assert following.char_start > previous.char_end
    assert_chunk_invariants(parsed, chunks, max_tokens=30, count=words)


def test_list_items_are_kept_whole() -> None:
    # Given a list of 7-word items
    items = [f"- item{n} is a whole list item." for n in range(15)]
    parsed = ParsedDocument([heading("Steps")] + [item(i) for i in items])
    # When chunked at 30 words with overlap
    chunks = chunk_document(parsed, options=plain(30, overlap_tokens=10), count_tokens=words)
    # Then no item is cut: every chunk consists of whole items
    for chunk in chunks:
        assert all(part in items for part in chunk.text.split("\n\n") if part != "Steps")
    assert_chunk_invariants(parsed, chunks, max_tokens=30, count=words)


def test_a_long_code_block_is_cut_between_lines() -> None:
    # Given a code block of twenty 5-word lines
    lines = [f"    value{n} = compute ( {n} )" for n in range(20)]
    code = "\n".join(lines).strip()
    parsed = ParsedDocument([Block(BlockKind.CODE, code)])
    # When chunked at 22 words
    chunks = chunk_document(parsed, options=plain(22, overlap_tokens=5), count_tokens=words)
    # Then every chunk is whole lines
    for chunk in chunks:
        assert parsed.text[chunk.char_end : chunk.char_end + 1] in ("", "\n")
    assert_chunk_invariants(parsed, chunks, max_tokens=22, count=words)


# --- pages, budgets, embedding input ------------------------------------------------


def test_a_chunk_has_the_page_of_its_first_block() -> None:
    # Given paragraphs on pages 1, 1, 2 and 3
    parsed = ParsedDocument(
        [paragraph(sentence(0), page=1), paragraph(sentence(1), page=1),
         paragraph(sentence(2), page=2), paragraph(sentence(3), page=3)]
    )  # fmt: skip
    # When chunked two paragraphs at a time
    chunks = chunk_document(parsed, options=plain(20), count_tokens=words)
    # Then each chunk reports where it begins
    assert [c.page for c in chunks] == [1, 2]


def test_pages_are_none_where_the_format_has_none() -> None:
    chunks = chunk_document(ParsedDocument([paragraph("No pages here.")]), count_tokens=words)
    assert chunks[0].page is None


def test_the_heading_path_is_reserved_in_the_budget_by_default() -> None:
    # Given a section whose path is 5 words ("Billing > Refunds" and its separator)
    parsed = ParsedDocument(
        [heading("Billing", 1), heading("Refunds", 2), long_paragraph_document().blocks[0]]
    )
    # When chunked at 40 words with the default reservation
    options = ChunkingOptions(max_tokens=40, overlap_tokens=0)
    chunks = chunk_document(parsed, options=options, count_tokens=words)
    # Then text and path together fit the budget
    for chunk in chunks:
        assert words(embedding_input(chunk)) <= 40
    assert max(c.token_count for c in chunks) < 40


def test_embedding_input_puts_the_heading_path_before_the_text() -> None:
    chunk = ChunkDraft(0, "Refunds take 5 days.", "Billing > Refunds", 0, 20, None, 5)
    assert embedding_input(chunk) == "Billing > Refunds\n\nRefunds take 5 days."
    no_path = ChunkDraft(0, "Intro.", "", 0, 6, None, 2)
    assert embedding_input(no_path) == "Intro."


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkingOptions(max_tokens=40, overlap_tokens=40)
    with pytest.raises(ValueError, match="max_tokens"):
        ChunkingOptions(max_tokens=0)


# --- the real tokenizer ---------------------------------------------------------------


def test_cached_word_piece_counts_equal_the_tokenizer() -> None:
    # Given text that exercises the tokenizer's normalizer and pre-tokenizer
    texts = [
        "Hello, World! e.g. U.S. v4.2.1 report.pdf billing@ledgerly.example",
        "Ünïcödé àccents, straße, İstanbul, ΣΊΣΥΦΟΣ",
        "今天天气很好。我们去公园吧！ mixed 文字text",
        "emoji 🙂 and zero\u200bwidth and nbsp\u00a0here and thin\u2009space",
        "x" * 150 + " " + "a-b" * 60,
        "control\x1cjoined and\x0bvertical\x85tab",
        "",
    ]
    for text in texts:
        # When counted through the word cache, twice (cold and warm)
        # Then the count is the tokenizer's
        assert count_word_pieces(text) == count_tokens(text), text
        assert count_word_pieces(text) == count_tokens(text), text


def test_the_default_counter_counts_through_the_word_cache() -> None:
    # The demo-document tests below exercise the cached path only if this holds.
    assert _tokenizer_is_bert_word_piece()


def test_whitespace_that_the_tokenizer_deletes_is_exactly_the_listed_set() -> None:
    # The word cache splits on str.split() whitespace; where the tokenizer deletes such
    # a character instead (joining two words), the text must go to the tokenizer itself.
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    for space in spaces:
        assert count_word_pieces(f"ab{space}cd") == count_tokens(f"ab{space}cd"), hex(ord(space))


@pytest.mark.parametrize(
    "name",
    ["billing-and-refunds.md", "data-export-and-import.md", "getting-started.md"],
)
def test_demo_documents_with_the_real_tokenizer(name: str) -> None:
    # Given a demo document parsed by simple means
    parsed = markdown_document(DEMO_DOCUMENTS / name)
    # When chunked with the default options
    chunks = chunk_document(parsed)
    # Then every invariant holds with the model's own token counts
    assert_chunk_invariants(parsed, chunks, max_tokens=250, count=count_tokens)
    # and the embedded input (path + text) fits the model's window as well
    for chunk in chunks:
        assert count_tokens(embedding_input(chunk)) <= MODEL_MAX_TOKENS - SPECIAL_TOKENS


def test_billing_document_has_a_chunk_for_enterprise_refunds() -> None:
    parsed = markdown_document(DEMO_DOCUMENTS / "billing-and-refunds.md")
    chunks = chunk_document(parsed)
    enterprise = [c for c in chunks if c.heading_path.endswith("Refunds > Enterprise plans")]
    assert enterprise
    assert enterprise[0].heading_path == "Billing and Refunds > Refunds > Enterprise plans"
    assert enterprise[0].text.startswith("Enterprise plans\n\n")
    assert any("60 days" in c.text for c in enterprise)


def test_small_budgets_on_a_demo_document_with_the_real_tokenizer() -> None:
    # Given a demo document and budgets that force sentence, word and overlap cuts
    parsed = markdown_document(DEMO_DOCUMENTS / "billing-and-refunds.md")
    for max_tokens, overlap in [(12, 0), (30, 10), (64, 20), (120, 40)]:
        options = ChunkingOptions(max_tokens=max_tokens, overlap_tokens=overlap)
        chunks = chunk_document(parsed, options=options)
        assert_chunk_invariants(parsed, chunks, max_tokens=max_tokens, count=count_tokens)


def test_a_pasted_blob_without_spaces_is_cut_within_the_budget() -> None:
    # Given a base64-like blob of 3,000 characters in a paragraph
    rng = random.Random(3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    blob = "".join(rng.choice(alphabet) for _ in range(3000))
    parsed = ParsedDocument([heading("Key"), paragraph(f"The key is {blob} and that is all.")])
    # When chunked, then every piece fits and is counted exactly
    chunks = chunk_document(parsed, options=ChunkingOptions(max_tokens=100, overlap_tokens=20))
    assert len(chunks) > 5
    assert_chunk_invariants(parsed, chunks, max_tokens=100, count=count_tokens)


# --- random documents -----------------------------------------------------------------

_VOCABULARY = (
    "the refund policy applies to annual plans only and e.g. Dr. Smith at U.S. Inc. "
    "paid 4.2 dollars for v4.2.1 see https://example.com/x.y or billing@ledgerly.example "
    "report.pdf Straße Überweisung café naïve 文字 今天。 emoji 🙂 (brackets) «quotes» "
    '"quoted" 1. 2) - * | ... … ? ! ; : 12,345.67 % $ ##hash'
).split()


def _random_sentence(rng: random.Random) -> str:
    body = " ".join(rng.choice(_VOCABULARY) for _ in range(rng.randint(1, 30)))
    return body[0].upper() + body[1:] + rng.choice([".", "!", "?", "。", "", "..."])


def _random_block(rng: random.Random) -> Block:
    roll = rng.random()
    if roll < 0.15:
        return heading(_random_sentence(rng)[:40].strip() or "H", level=rng.randint(1, 4))
    if roll < 0.3:
        return item("- " + _random_sentence(rng))
    if roll < 0.4:
        cells = " | ".join(rng.choice(_VOCABULARY) for _ in range(rng.randint(1, 8)))
        return row(f"| {cells} |")
    if roll < 0.45:
        return Block(BlockKind.CODE, "\n".join(_random_sentence(rng) for _ in range(5)))
    if roll < 0.5:  # a run-on sentence or a blob: forces word and character cuts
        if rng.random() < 0.5:
            return paragraph(" ".join(rng.choice(_VOCABULARY) for _ in range(150)))
        return paragraph("".join(rng.choice("abcdefgh0123") for _ in range(rng.randint(50, 900))))
    sentences = " ".join(_random_sentence(rng) for _ in range(rng.randint(1, 12)))
    return paragraph(sentences, page=rng.choice([None, 1, 2, 3]))


def _random_document(rng: random.Random) -> ParsedDocument:
    return ParsedDocument([_random_block(rng) for _ in range(rng.randint(0, 25))])


@pytest.mark.parametrize(
    ("counter", "documents"), [(words, 300), (characters, 100)], ids=["words", "characters"]
)
def test_invariants_hold_on_random_documents(counter: Callable[[str], int], documents: int) -> None:
    rng = random.Random(2026)
    for _ in range(documents):
        # Given a random document and random options
        parsed = _random_document(rng)
        max_tokens = rng.randint(3, 120) if counter is words else rng.randint(20, 600)
        options = ChunkingOptions(
            max_tokens=max_tokens,
            overlap_tokens=rng.randint(0, max_tokens - 1) if rng.random() < 0.7 else 0,
            reserve_heading_path=rng.random() < 0.5,
        )
        # When chunked
        chunks = chunk_document(parsed, options=options, count_tokens=counter)
        # Then the invariants hold
        assert_chunk_invariants(parsed, chunks, max_tokens=max_tokens, count=counter)


def test_invariants_hold_on_random_documents_with_the_real_tokenizer() -> None:
    rng = random.Random(42)
    for _ in range(120):
        parsed = _random_document(rng)
        max_tokens = rng.randint(8, 250)
        options = ChunkingOptions(
            max_tokens=max_tokens, overlap_tokens=rng.randint(0, min(40, max_tokens - 1))
        )
        chunks = chunk_document(parsed, options=options)
        assert_chunk_invariants(parsed, chunks, max_tokens=max_tokens, count=count_tokens)
