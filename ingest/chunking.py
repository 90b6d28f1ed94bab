"""Semantic chunking: a parsed document becomes token-bounded, citable chunks.

The chunker walks the parser's blocks in order and splits along the document's
own structure, coarsest first:

1. **Sections.** A heading starts a new chunk and no chunk ever crosses a
   heading, so every chunk belongs to exactly one heading path. The heading's
   text opens its section's first chunk, so a citation shows the section title.
2. **Blocks.** Consecutive paragraphs, list items, table rows and code blocks of
   one section are packed together while they fit; a block that fits is never
   cut, which keeps list items and table rows whole.
3. **Sentences.** Only a block longer than the budget is cut, between sentences
   (between lines for code).
4. **Words.** Only a single sentence longer than the budget is cut mid-sentence,
   between words (and a single "word" longer than the budget, such as a pasted
   base64 blob, between characters).

When a section needs several chunks, each continuation chunk starts with the
last whole sentences of the previous chunk (at most ``overlap_tokens``), so a
fact split across the boundary is still retrievable from either side. Chunk
text is always an exact slice of ``ParsedDocument.text``; overlap therefore
shows up as overlapping character spans, never as copied text.

Token counts are the embedding model's word pieces, and every chunk's
``token_count`` is the count of its final text, never an estimate. Sizes are
decided by summing the counts of units (blocks, sentences) that were counted
once, and only the chosen chunk is counted again; should the sum be off (a
counter that is not additive), units move to the next chunk until it fits.
With the default counter, counts come from a process-wide cache of per-word
word-piece counts: a BERT tokenizer never lets a token cross whitespace, so this
is exact, and it costs a dictionary lookup per word where running the tokenizer
would cost about twenty times more (the chunker shares the CPU with the model).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

from ingest.parsing.base import BlockKind, ParsedDocument
from kb.embeddings import tokens
from kb.embeddings.inputs import chunk_embedding_input
from kb.sentences import Span, line_spans, sentence_spans, word_spans

HEADING_PATH_SEPARATOR = " > "

# Kinds whose trailing sentences may be repeated at the start of the next chunk.
# Table rows are not sentences: a table split between rows repeats nothing.
_OVERLAP_KINDS = frozenset({BlockKind.PARAGRAPH, BlockKind.LIST_ITEM, BlockKind.CODE})
# Kinds that may be cut into sentences so that a heading does not end up alone in
# its chunk; list items and table rows that fit stay whole even then.
_SPLIT_TO_FILL_KINDS = frozenset({BlockKind.PARAGRAPH, BlockKind.CODE})

_WHOLE_BLOCK, _SENTENCE, _PIECE = 0, 1, 2  # _Unit.grain, coarse to fine


@dataclass(frozen=True)
class ChunkDraft:
    """One chunk as the chunker proposes it, before it is embedded and stored."""

    ordinal: int  # 0, 1, 2, ... in document order
    text: str  # exactly parsed.text[char_start:char_end]
    heading_path: str  # "Billing and Refunds > Refunds > Enterprise plans"; "" before any heading
    char_start: int
    char_end: int
    page: int | None  # page of the chunk's first block
    token_count: int  # word pieces of text, without the model's [CLS]/[SEP]


@dataclass(frozen=True)
class ChunkingOptions:
    """How big chunks may get.

    ``max_tokens`` defaults to 250 because all-MiniLM-L6-v2 reads 256 word pieces
    including [CLS] and [SEP] (see ``kb.embeddings.tokens``); anything longer is
    silently truncated by the model.

    ``reserve_heading_path``: what gets embedded is ``embedding_input(chunk)``, the
    heading path followed by the text, so by default a section's text budget is
    ``max_tokens`` minus the path's tokens and the embedded input fits the model
    too. The reservation never takes more than half the budget; beyond that a
    very deep path would leave room for almost no text.
    """

    max_tokens: int = 250
    overlap_tokens: int = 40
    reserve_heading_path: bool = True

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("overlap_tokens must be at least 0 and less than max_tokens")


DEFAULT_OPTIONS = ChunkingOptions()


def chunk_document(
    parsed: ParsedDocument,
    *,
    options: ChunkingOptions = DEFAULT_OPTIONS,
    count_tokens: Callable[[str], int] = tokens.count_tokens,
) -> list[ChunkDraft]:
    """Split ``parsed`` into chunks of at most ``options.max_tokens`` tokens.

    Chunks come in document order, carry their heading path, character span and
    page, and together cover every non-whitespace character of ``parsed.text``.
    ``token_count`` is the count of the chunk's text by ``count_tokens``; pass
    another counter (for example one word = one token) to reason about sizes in
    tests.
    """
    text = parsed.text
    if not text.strip():
        return []
    block_spans = [
        _strip(text, start, start + len(block.text))
        for block, start in zip(parsed.blocks, parsed.block_offsets(), strict=True)
    ]
    counter: _SpanCounter
    if count_tokens is tokens.count_tokens and _tokenizer_is_bert_word_piece():
        counter = _WordPieceCounter(text)
    else:
        counter = _CallableCounter(text, count_tokens)
    return _Chunker(parsed, text, block_spans, options, counter).run()


def embedding_input(chunk: ChunkDraft) -> str:
    """The text to embed: the heading path gives a chunk the context its text may lack.

    "Enterprise plans" alone is ambiguous; "Billing and Refunds > Refunds >
    Enterprise plans" is not, and a query about enterprise refunds lands on it.
    """
    return chunk_embedding_input(heading_path=chunk.heading_path, text=chunk.text)


# --- packing --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unit:
    """A span the packer places whole: a block, a sentence (or code line), or a piece."""

    start: int
    end: int
    tokens: int
    block: int
    grain: int  # _WHOLE_BLOCK, _SENTENCE or _PIECE


@dataclass(frozen=True, slots=True)
class _Section:
    heading_path: str
    headings: list[int]  # the blocks of the path's headings, outermost first
    blocks: list[int]


class _Chunker:
    def __init__(
        self,
        parsed: ParsedDocument,
        text: str,
        block_spans: list[Span],
        options: ChunkingOptions,
        counter: _SpanCounter,
    ) -> None:
        self._blocks = parsed.blocks
        self._text = text
        self._block_spans = block_spans
        self._options = options
        self._counter = counter
        self._chunks: list[ChunkDraft] = []
        self._separator_tokens: int | None = None
        self._heading_tokens: dict[int, int] = {}

    def run(self) -> list[ChunkDraft]:
        for section in self._sections():
            self._pack(section, self._budget(section))
        return self._chunks

    def _sections(self) -> Iterator[_Section]:
        """Group blocks under their heading; a heading of level L replaces levels >= L."""
        path: list[tuple[int, int, str]] = []  # (level, heading block, title)
        section = _Section("", [], [])
        for index, block in enumerate(self._blocks):
            start, end = self._block_spans[index]
            if start == end:
                continue  # an empty block has nothing to cite
            if block.kind == BlockKind.HEADING:
                level = max(block.level, 1)
                carried: list[int] = []
                if section.blocks:
                    bare = section.blocks == section.headings[-1:]
                    if bare and path and level > path[-1][0]:
                        # A heading with nothing under it but a sub-heading opens the
                        # sub-section's chunk instead of becoming a chunk of one title.
                        carried = section.blocks
                    else:
                        yield section
                title = " ".join(self._text[start:end].split())
                path = [entry for entry in path if entry[0] < level] + [(level, index, title)]
                section = _Section(
                    HEADING_PATH_SEPARATOR.join(title for _, _, title in path),
                    [heading for _, heading, _ in path],
                    carried,
                )
            section.blocks.append(index)
        if section.blocks:
            yield section

    def _budget(self, section: _Section) -> int:
        """The section's text budget: ``max_tokens`` less what its heading path costs.

        The path's tokens are taken as its titles' plus its separators', which
        is exact for a word-piece tokenizer and saves tokenizing every path.
        """
        max_tokens = self._options.max_tokens
        if not (section.headings and self._options.reserve_heading_path):
            return max_tokens
        if self._separator_tokens is None:
            self._separator_tokens = self._counter.count_text(HEADING_PATH_SEPARATOR)
        for heading in section.headings:  # ancestors were counted in their own sections
            if heading not in self._heading_tokens:
                self._heading_tokens[heading] = self._counter.count(*self._block_spans[heading])
        reserved = sum(self._heading_tokens[heading] for heading in section.headings)
        reserved += self._separator_tokens * (len(section.headings) - 1)
        return max(max_tokens - reserved, max_tokens // 2, 1)

    def _pack(self, section: _Section, budget: int) -> None:
        """Greedily fill chunks with the section's units, in order, within ``budget``."""
        pending = iter(section.blocks)
        queue: deque[_Unit] = deque()
        current: list[_Unit] = []
        overlap = 0  # how many units at the start of current are repeated overlap
        total = 0
        while (unit := self._next_unit(queue, pending, budget)) is not None:
            queue.popleft()
            if current and total + unit.tokens > budget:
                if self._split_to_fill(current, unit):
                    queue.extendleft(reversed(self._split(unit, budget)))
                    continue
                queue.appendleft(unit)
                emitted, leftovers = self._emit(current, overlap, section, budget)
                queue.extendleft(reversed(leftovers))
                following = self._next_unit(queue, pending, budget)
                current = self._overlap(emitted, following, budget) if following else []
                overlap, total = len(current), sum(u.tokens for u in current)
                continue
            current.append(unit)
            total += unit.tokens
        while current:
            _, current = self._emit(current, overlap, section, budget)
            overlap = 0

    def _next_unit(self, queue: deque[_Unit], pending: Iterator[int], budget: int) -> _Unit | None:
        """The queue's first unit, split until it fits the budget; None when all are placed."""
        while True:
            if not queue:
                block = next(pending, None)
                if block is None:
                    return None
                start, end = self._block_spans[block]
                queue.append(_Unit(start, end, self._counter.count(start, end), block, 0))
            unit = queue[0]
            if unit.tokens <= budget:
                return unit
            parts = self._split(unit, budget)
            if len(parts) == 1 and (parts[0].start, parts[0].end) == (unit.start, unit.end):
                return unit  # one character over the budget: nothing finer to cut
            queue.popleft()
            queue.extendleft(reversed(parts))

    def _split_to_fill(self, current: list[_Unit], unit: _Unit) -> bool:
        """Whether to cut ``unit`` into sentences rather than leave a heading alone."""
        return (
            unit.grain == _WHOLE_BLOCK
            and self._blocks[unit.block].kind in _SPLIT_TO_FILL_KINDS
            and all(self._blocks[u.block].kind == BlockKind.HEADING for u in current)
            and len(self._sub_spans(unit)) > 1
        )

    def _emit(
        self, units: list[_Unit], overlap: int, section: _Section, budget: int
    ) -> tuple[list[_Unit], list[_Unit]]:
        """Emit the chunk spanning ``units``; return the units used and those left over.

        Unit counts were summed; the chunk's own count decides. A counter that is
        not additive may count the joined text higher: then units move to the next
        chunk (or repeated overlap is dropped) until the chunk fits.
        """
        units = list(units)
        leftovers: list[_Unit] = []
        while True:
            start, end = units[0].start, units[-1].end
            count = self._counter.count(start, end)
            if count <= budget or len(units) == 1:
                break
            if len(units) - overlap > 1:
                leftovers.insert(0, units.pop())
            else:
                units.pop(0)
                overlap -= 1
        self._chunks.append(
            ChunkDraft(
                ordinal=len(self._chunks),
                text=self._text[start:end],
                heading_path=section.heading_path,
                char_start=start,
                char_end=end,
                page=self._blocks[units[0].block].page,
                token_count=count,
            )
        )
        return units, leftovers

    def _overlap(self, emitted: list[_Unit], following: _Unit, budget: int) -> list[_Unit]:
        """The previous chunk's last whole sentences to repeat before ``following``.

        At most ``overlap_tokens`` and never more than leaves room for ``following``;
        never a heading, table row or word piece, and never the whole previous chunk.
        """
        limit = min(self._options.overlap_tokens, budget - following.tokens)
        chunk_start = emitted[0].start
        picked: list[_Unit] = []
        total = 0
        for unit in reversed(emitted):
            if limit <= 0 or unit.grain == _PIECE:
                break
            if self._blocks[unit.block].kind not in _OVERLAP_KINDS:
                break
            if unit.grain == _SENTENCE:
                candidates = [(unit.start, unit.end)]
            else:
                candidates = self._sub_spans(unit)
            for start, end in reversed(candidates):
                count = unit.tokens if unit.grain == _SENTENCE else self._counter.count(start, end)
                if start <= chunk_start or total + count > limit:
                    return picked[::-1]
                picked.append(_Unit(start, end, count, unit.block, _SENTENCE))
                total += count
        return picked[::-1]

    # --- splitting ----------------------------------------------------------------

    def _sub_spans(self, unit: _Unit) -> list[Span]:
        """Sentences of a prose block, lines of a code block, as spans into the text."""
        region = self._text[unit.start : unit.end]
        if self._blocks[unit.block].kind == BlockKind.CODE:
            spans = line_spans(region)
        else:
            spans = sentence_spans(region)
        return [(unit.start + start, unit.start + end) for start, end in spans]

    def _split(self, unit: _Unit, budget: int) -> list[_Unit]:
        """Cut a unit one grain finer: block -> sentences, sentence -> word pieces."""
        if unit.grain == _WHOLE_BLOCK:
            spans = self._sub_spans(unit)
            if len(spans) > 1:
                return [
                    _Unit(start, end, self._counter.count(start, end), unit.block, _SENTENCE)
                    for start, end in spans
                ]
        return self._split_words(unit, budget)

    def _split_words(self, unit: _Unit, budget: int) -> list[_Unit]:
        """Pack the words of a too-long sentence into pieces within ``budget``."""
        words = word_spans(self._text, unit.start, unit.end)
        counts = [self._counter.count(start, end) for start, end in words]
        pieces: list[_Unit] = []
        first = 0
        while first < len(words):
            if counts[first] > budget:
                pieces.extend(self._split_characters(words[first], unit.block, budget))
                first += 1
                continue
            last, total = first, 0
            while last < len(words) and counts[last] <= budget - total:
                total += counts[last]
                last += 1
            while True:  # verify the joined words; give words back if the sum was low
                start, end = words[first][0], words[last - 1][1]
                count = self._counter.count(start, end)
                if count <= budget or last == first + 1:
                    break
                last -= 1
            pieces.append(_Unit(start, end, count, unit.block, _PIECE))
            first = last
        return pieces

    def _split_characters(self, word: Span, block: int, budget: int) -> list[_Unit]:
        """Cut one over-long word into the longest prefixes within ``budget``.

        The window grows by doubling before the binary search, so each tokenizer
        call reads about one piece's worth of text, not the rest of the word.
        """
        pieces: list[_Unit] = []
        start, end = word
        count = self._counter.count
        while start < end:
            whole = count(start, end) if end - start <= 4 * budget else budget + 1
            if whole <= budget:
                pieces.append(_Unit(start, end, whole, block, _PIECE))
                break
            low, high = start + 1, min(end, start + 2 * budget)
            while high < end and count(start, high) <= budget:
                low, high = high, min(end, start + 2 * (high - start))
            while low < high:  # largest cut with count(start, cut) <= budget
                middle = (low + high + 1) // 2
                if count(start, middle) <= budget:
                    low = middle
                else:
                    high = middle - 1
            pieces.append(_Unit(start, low, count(start, low), block, _PIECE))
            start = low
        return pieces


def _strip(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# --- counting -------------------------------------------------------------------


class _SpanCounter(Protocol):
    def count(self, start: int, end: int) -> int:
        """Tokens of ``text[start:end]``."""

    def count_text(self, text: str) -> int:
        """Tokens of a string that is not part of the document (a heading path separator)."""


class _CallableCounter:
    """Counts with any ``str -> int`` function, one call per distinct span."""

    def __init__(self, text: str, count_tokens: Callable[[str], int]) -> None:
        self._text = text
        self._count_tokens = count_tokens
        self._cache: dict[Span, int] = {}

    def count(self, start: int, end: int) -> int:
        key = (start, end)
        if key not in self._cache:
            self._cache[key] = self._count_tokens(self._text[start:end])
        return self._cache[key]

    def count_text(self, text: str) -> int:
        return self._count_tokens(text)


class _WordPieceCounter:
    """The embedding tokenizer's exact counts, from a cache of per-word counts.

    A BERT word-piece tokenizer never lets a token cross whitespace, so a
    text's count is the sum of its whitespace-separated words' counts, and the
    count of a word never depends on its neighbours. Words repeat (a manual
    says "the", "table", "PostgreSQL" thousands of times), so counting through a
    process-wide word cache costs a dictionary lookup per word once it is warm,
    about a twentieth of running the tokenizer over the text again.
    """

    def __init__(self, text: str) -> None:
        self._text = text

    def count(self, start: int, end: int) -> int:
        return count_word_pieces(self._text[start:end])

    def count_text(self, text: str) -> int:
        return count_word_pieces(text)


# Characters str.split() takes for whitespace but the BERT normalizer deletes as
# control characters, joining the words on either side: text holding one is
# counted by the tokenizer itself. Checked against the tokenizer in the tests.
_JOINED_BY_TOKENIZER = re.compile("[\x0b\x0c\x1c-\x1f\x85]")
_MAX_CACHED_WORDS = 200_000
_MAX_CACHED_LENGTH = 64
_word_pieces: dict[str, int] = {}


@cache
def _tokenizer_is_bert_word_piece() -> bool:
    """Whether counting word by word is exact: true of BERT's normalizer, pre-tokenizer
    and word-piece model, not of, say, SentencePiece, where whitespace is in tokens."""
    tokenizer = tokens._tokenizer()
    return (
        isinstance(tokenizer.normalizer, BertNormalizer)
        and isinstance(tokenizer.pre_tokenizer, BertPreTokenizer)
        and isinstance(tokenizer.model, WordPiece)
    )


def count_word_pieces(text: str) -> int:
    """``kb.embeddings.tokens.count_tokens(text)``, computed word by word through a cache."""
    if _JOINED_BY_TOKENIZER.search(text):
        return tokens.count_tokens(text)
    words = text.split()
    try:
        return sum(map(_word_pieces.__getitem__, words))
    except KeyError:
        counts = _learn_words(words)
        return sum(map(counts.__getitem__, words))


def _learn_words(words: list[str]) -> dict[str, int]:
    """Counts of ``words``, tokenizing the uncached ones in one call (joined by spaces).

    Returns its own mapping, so a cache cleared meanwhile cannot lose a count.
    """
    counts = {word: _word_pieces.get(word, -1) for word in words}
    missing = [word for word, count in counts.items() if count < 0]
    word_starts, position = [], 0
    for word in missing:
        counts[word] = 0
        word_starts.append(position)
        position += len(word) + 1
    # The private accessor: attributing tokens to words needs their offsets.
    encoding = tokens._tokenizer().encode(" ".join(missing), add_special_tokens=False)
    for token_start, _ in encoding.offsets:
        counts[missing[bisect_right(word_starts, token_start) - 1]] += 1
    if len(_word_pieces) + len(missing) > _MAX_CACHED_WORDS:
        _word_pieces.clear()  # crude but bounded; it refills with the common words quickly
    # Long "words" (hashes, base64, pieces of a cut word) rarely come back: not cached.
    _word_pieces.update((word, counts[word]) for word in missing if len(word) <= _MAX_CACHED_LENGTH)
    return counts
