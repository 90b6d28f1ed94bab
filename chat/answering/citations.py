"""Citation parsing and the citation check.

An answer cites passages with ``[n]`` markers. After generation, every sentence
that cites a passage is scored for support against that passage from two
measures: lexical overlap (the share of the sentence's content words the passage
contains) and embedding similarity (the sentence against the passage's stored
vector). The score is the better of the similarity and the mean of both, so a
faithful paraphrase (few shared words, close meaning) passes, and so does a
close quotation. Citations below CAIRN_CITATION_MIN_SUPPORT are dropped; so is
any citation of a sentence stating a number the passage does not contain
("$95" and "$59" embed alike, and numbers are where invented facts hurt most).

Every sentence of the answer is judged: supported when one of its citations stood;
unsupported when they all failed or when it cites nothing; not counted when it states
nothing a source could back (a heading, a lead-in such as "Here is what the documents
say:", the abstention: ``sentence_is_trivial``). An unsupported sentence is marked
``[?]`` in the text, and the result lists every sentence with its span, so the chat can
mark it ("not found in the sources") and the API can flag it. The pipeline turns an
answer with no supported citation, or whose supported share of the counted sentences
is below CAIRN_ANSWER_MIN_SUPPORTED_SHARE, into the abstention.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from chat.answering.texts import ABSTENTION_TEXT
from kb.embeddings.texts import texts_embed
from kb.search.tokenize import ENGLISH_STOP_WORDS, tokenize
from kb.sentences import sentence_spans

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
UNVERIFIED = "[?]"
_LEADING_MARKERS = re.compile(r"(?:\s*\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\])+")

Vector = npt.NDArray[np.floating]


@dataclass(frozen=True)
class Support:
    """How well one cited passage supports one sentence."""

    number: int
    sentence: str
    lexical: float
    semantic: float
    supported: bool

    numbers_match: bool = True

    @property
    def score(self) -> float:
        return support_score(self.lexical, self.semantic)


def support_score(lexical: float, semantic: float) -> float:
    semantic = max(semantic, 0.0)
    return max(semantic, (lexical + semantic) / 2)


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(MARKER.sub(" ", text))}


@dataclass(frozen=True)
class CheckedSentence:
    """One sentence of a checked answer, as the API lists it and the chat marks it."""

    text: str  # as the reader sees it, without [n] markers
    citations: tuple[int, ...]  # the passages whose citation stood
    supported: bool  # False: it states something no citation backs, or it cites nothing
    counted: bool  # False: it states nothing to check (sentence_is_trivial)
    start: int  # the sentence with its kept markers, as a span of CheckedAnswer.text
    end: int

    @property
    def marked(self) -> bool:
        """Whether the answer text marks it ``[?]`` (right after ``end``)."""
        return self.counted and not self.supported

    def as_data(self) -> dict[str, object]:
        """What Message.sentences stores (the span lets the chat mark it in the text)."""
        return {
            "text": self.text, "citations": list(self.citations), "supported": self.supported,
            "start": self.start, "end": self.end,
        }  # fmt: skip


@dataclass(frozen=True)
class CheckedAnswer:
    text: str  # the answer with unsupported markers dropped and unsupported sentences marked
    supports: tuple[Support, ...]
    cited: tuple[int, ...]  # supported passage numbers, in order of first citation
    best_score: dict[int, float] = field(default_factory=dict)  # per supported passage
    sentences: tuple[CheckedSentence, ...] = ()  # every sentence of ``text``, in order

    @property
    def grounded(self) -> bool:
        return bool(self.cited)

    @property
    def supported_share(self) -> float | None:
        """Supported sentences / sentences that state something (None: there are none).

        By sentences, not characters: each claim counts once, however long its wording.
        """
        counted = [s for s in self.sentences if s.counted]
        if not counted:
            return None
        return sum(s.supported for s in counted) / len(counted)

    def rewritten(self, edit: Callable[[str], str]) -> CheckedAnswer:
        """The answer with ``edit`` applied to each sentence (markers and all), spans kept
        true; for edits that keep a sentence one sentence (stripping a link, say)."""
        pieces: list[str] = []
        sentences: list[CheckedSentence] = []
        position = length = 0
        for sentence in self.sentences:
            gap = self.text[position : sentence.start]
            body = _tidy(edit(self.text[sentence.start : sentence.end]))
            start = length + len(gap)
            sentences.append(
                replace(sentence, text=_plain(body), start=start, end=start + len(body))
            )
            flag = f" {UNVERIFIED}" if sentence.marked else ""
            pieces += [gap, body, flag]
            length = start + len(body) + len(flag)
            position = sentence.end + len(flag)
        return replace(self, text="".join(pieces), sentences=tuple(sentences))


# Sentences that state nothing a source could back (see sentence_is_trivial).
_HEADING = re.compile(r"#{1,6}\s|(\*\*|__)[^*_\n]+\1:?$")
_BLOCK_PREFIX = re.compile(r"^(?:(?:[-*+•]|\d{1,9}[.)]|#{1,6}|>)[ \t]+)+")  # a bullet, "1.", "##"
_PREAMBLE = re.compile(
    r"(?:(?:sure|certainly|of course|absolutely|okay|ok|great question|good question|"
    r"happy to help)[!.,]*"
    r"|(?:(?:sure|certainly|of course|okay|ok)[!.,]*\s+)?here(?:'s|’s| is| are)\b.*"
    r"|(?:i )?hope (?:this|that) helps\b.*|let me know\b.*|feel free to\b.*"
    r"|if you have (?:any )?(?:other|more|further) questions\b.*)",
    re.IGNORECASE,
)
_PREAMBLE_MAX_WORDS = 15


def sentence_is_trivial(text: str) -> bool:
    """Whether a sentence that cites nothing states nothing to check.

    Trivial: a Markdown heading or a line that is all bold; a lead-in ending in a colon
    ("Here is what the documents say:", "To ask for a refund:"); a set phrase opening
    or closing an answer ("Sure, here's what I found.", "Let me know if you have other
    questions."); a single word ("Yes."); a sentence without content words; the
    abstention. Only without a number: "$59" in a lead-in is a claim. Everything else
    that cites nothing counts as unsupported: a fact with no source is what this check
    is for, so the rule errs towards counting.
    """
    stripped = text.strip()
    if _HEADING.match(stripped):
        return True
    plain = _BLOCK_PREFIX.sub("", stripped, count=1).strip("*_ ")  # a list item's own text
    if not plain:
        return True
    if plain.rstrip(".") == ABSTENTION_TEXT.rstrip("."):
        return True
    if numbers_in(plain):
        return False
    words = plain.split()
    return (
        plain.endswith(":")
        or len(words) == 1
        or not content_terms(plain)
        or (len(words) <= _PREAMBLE_MAX_WORDS and _PREAMBLE.fullmatch(plain) is not None)
    )


def _plain(body: str) -> str:
    """A sentence as the API lists it: no [n] markers, no list bullet or heading marks."""
    return _BLOCK_PREFIX.sub("", _tidy(MARKER.sub(" ", body)), count=1)


def _gap(whitespace: str) -> str:
    """The space between two sentences, tidied like a sentence (kept line breaks)."""
    return re.sub(r"[ \t]+(?=\n)", "", re.sub(r"[ \t]{2,}", " ", whitespace))


def _tidy(text: str) -> str:
    """Single spaces, none before punctuation or at line ends, none around."""
    text = re.sub(r"[ \t]+(?=[.,;:!?]|\n|$)", "", re.sub(r"[ \t]{2,}", " ", text))
    return text.strip()


@dataclass
class _Sentence:
    start: int
    end: int
    markers: list[re.Match[str]] = field(default_factory=list)


def marker_numbers(match: re.Match[str]) -> list[int]:
    return [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1))]


def content_terms(text: str) -> set[str]:
    return set(tokenize(MARKER.sub(" ", text), stop_words=ENGLISH_STOP_WORDS))


def lexical_support(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that the passage contains."""
    terms = content_terms(sentence)
    if not terms:
        return 0.0
    return len(terms & content_terms(passage)) / len(terms)


def _sentences(text: str) -> list[_Sentence]:
    """Sentences with their markers; a marker opening a sentence ("… month. [2] Next")
    belongs to the sentence before it."""
    sentences = [_Sentence(start, end) for start, end in sentence_spans(text)]
    for index, sentence in enumerate(sentences):
        leading = _LEADING_MARKERS.match(text, sentence.start, sentence.end)
        if index and leading:
            previous = sentences[index - 1]
            previous.end = leading.end()
            sentence.start = leading.end()
    for match in MARKER.finditer(text):
        owner = next((s for s in sentences if s.start <= match.start() < s.end), None)
        if owner is not None:
            owner.markers.append(match)
    return sentences


def citations_check(
    answer: str,
    *,
    passages: Mapping[int, str],
    passage_vectors: Mapping[int, Vector],
    embedding_model: str,
    min_support: float,
    knowledge_base_id: int | None = None,
) -> CheckedAnswer:
    """Score every citation of ``answer``, keep those that hold, judge every sentence.

    ``passages`` maps a passage number to its text, ``passage_vectors`` to its
    stored embedding (normalised). Markers naming no passage are dropped. Each
    sentence of the result says whether it is supported; a sentence that states
    something unsupported is marked ``[?]`` in the text. The sentences' vectors come
    through kb.embeddings.texts: an extractive answer quotes the same units question
    after question, so they are computed once (and stored for ``knowledge_base_id``).
    """
    every = _sentences(answer)
    citing = [index for index, s in enumerate(every) if s.markers]
    texts = [MARKER.sub(" ", answer[every[i].start : every[i].end]).strip() for i in citing]
    vectors = (
        list(texts_embed(embedding_model, texts, knowledge_base_id=knowledge_base_id))
        if texts
        else []
    )
    scored = dict(zip(citing, zip(texts, vectors, strict=True), strict=True))
    supports: list[Support] = []
    cited: list[int] = []
    best: dict[int, float] = {}
    pieces: list[str] = []
    checked_sentences: list[CheckedSentence] = []
    position = length = 0
    for index, sentence in enumerate(every):
        kept_numbers: list[int] = []
        if index in scored:
            text, vector = scored[index]
            for match in sentence.markers:
                for number in marker_numbers(match):
                    if number not in passages:
                        continue
                    support = _support(text, vector, number, passages, passage_vectors,
                                       min_support)  # fmt: skip
                    supports.append(support)
                    if support.supported:
                        kept_numbers.append(number)
                        best[number] = max(best.get(number, 0.0), support.score)
                        if number not in cited:
                            cited.append(number)
        body = _tidy(_markers_kept(answer, sentence, set(kept_numbers)))
        counted = bool(sentence.markers) or not sentence_is_trivial(_tidy(MARKER.sub(" ", body)))
        # A sentence after markers moved to the one before starts with their whitespace.
        opening = answer[sentence.start : sentence.end]
        begins = sentence.start + len(opening) - len(opening.lstrip())
        gap = _gap(answer[position:begins]) if pieces else ""
        start = length + len(gap)
        checked_sentence = CheckedSentence(
            text=_plain(body), citations=tuple(dict.fromkeys(kept_numbers)),
            supported=bool(kept_numbers) or not counted, counted=counted,
            start=start, end=start + len(body),
        )  # fmt: skip
        flag = f" {UNVERIFIED}" if checked_sentence.marked else ""
        pieces += [gap, body, flag]
        length = checked_sentence.end + len(flag)
        position = sentence.end
        checked_sentences.append(checked_sentence)
    return CheckedAnswer(
        "".join(pieces), tuple(supports), tuple(cited), best, tuple(checked_sentences)
    )


def _support(
    text: str,
    vector: Vector,
    number: int,
    passages: Mapping[int, str],
    passage_vectors: Mapping[int, Vector],
    min_support: float,
) -> Support:
    passage_vector = passage_vectors.get(number)
    semantic = 0.0 if passage_vector is None else float(np.dot(vector, passage_vector))
    lexical = lexical_support(text, passages[number])
    numbers_match = numbers_in(text) <= numbers_in(passages[number])
    supported = numbers_match and support_score(lexical, semantic) >= min_support
    return Support(number, text, lexical, semantic, supported, numbers_match)


def _markers_kept(answer: str, sentence: _Sentence, kept: set[int]) -> str:
    """The sentence's text with each marker reduced to the passages that stood."""
    out: list[str] = []
    position = sentence.start
    for match in sentence.markers:
        out.append(answer[position : match.start()])
        numbers = dict.fromkeys(n for n in marker_numbers(match) if n in kept)
        out.append("".join(f"[{n}]" for n in numbers))
        position = match.end()
    out.append(answer[position : sentence.end])
    return "".join(out)
