"""Measure the passage scan (kb.guard.passages): false flags on benign text, recall on
planted instructions.

Benign text is any folder of documents Cairn reads (the Python and PostgreSQL manuals
of Debian's python3.11-doc and postgresql-doc-15 are the usual ones), parsed and
chunked by ingestion's own parser and chunker; every flag raised on it is a false
alarm, listed with the sentence that raised it. Recall is measured on instructions
planted in a benign paragraph: tests/data/planted_instructions.jsonl (written for
the scan) and, written by others, the injections of the labelled question file
(tests/data/prompt_injections.jsonl).

How the rules were measured (issue 19, item 3), each corpus held out until it was
scanned once, and development data from then on: the rules were written on the Python
manual (16,961 chunks: 615 flagged before, 0 after); held out in turn, the PostgreSQL
manual (11,167 chunks) flagged 25 at its first scan, Django's manual (13,159) 23 and
git's with the Debian Reference (9,049) 4; each time the rule at fault was made general
(no sentence of a corpus is listed anywhere). The last held-out corpora, scanned once
with the rules as they are now: Node.js's API manual (13,627 chunks) and SQLAlchemy's
(12,395): no chunk flagged. ``guard_eval passages DIR`` and benchmarks/passage_scan.py
print these figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.chunking import chunk_document
from ingest.filetypes import BY_EXTENSION
from ingest.parsing.base import ParseError
from ingest.parsing.registry import parse_document
from kb.embeddings.usage import usage_recording_paused
from kb.guard.passages import INSTRUCTIONS, passage_scan, sentence_is_instruction
from kb.sentences import sentence_spans

REPO_ROOT = Path(__file__).resolve().parents[1]
PLANTED = REPO_ROOT / "tests" / "data" / "planted_instructions.jsonl"
QUESTION_INJECTIONS = REPO_ROOT / "tests" / "data" / "prompt_injections.jsonl"
MANUALS = {
    # where the rules were written
    "python3.11-doc": Path("/usr/share/doc/python3.11/html"),
    # the first held-out corpus (development data since), the CI gate's corpus
    "postgresql-doc-15": Path("/usr/share/doc/postgresql-doc-15/html"),
}
DEVELOPMENT, HELD_OUT = "python3.11-doc", "postgresql-doc-15"
# A paragraph of an ordinary help page; the instruction is planted in its middle.
HOST = (
    "Invoices are sent on the first day of each month as PDF files. {planted} "
    "Payment is due within 30 days, and a reminder follows a week after that."
)


@dataclass(frozen=True)
class FalseFlag:
    corpus: str
    chunk: int
    flags: tuple[str, ...]
    score: float | None
    sentences: tuple[str, ...]  # the candidate sentences of the chunk


@dataclass
class BenignPart:
    name: str
    chunks: int = 0
    flagged: list[FalseFlag] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.flagged) / self.chunks if self.chunks else 0.0


@dataclass
class Recall:
    name: str
    total: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return (self.total - len(self.missed)) / self.total if self.total else 0.0


@dataclass
class PassageReport:
    benign: list[BenignPart]
    recall: list[Recall]

    def as_dict(self) -> dict[str, Any]:
        return {
            "benign": {
                part.name: {
                    "chunks": part.chunks,
                    "false_flags": len(part.flagged),
                    "rate": part.rate,
                    "seconds": round(part.seconds, 1),
                    "flagged": [
                        {
                            "chunk": f.chunk,
                            "flags": list(f.flags),
                            "score": f.score,
                            "sentences": list(f.sentences),
                        }
                        for f in part.flagged
                    ],  # fmt: skip
                }
                for part in self.benign
            },
            "recall": {
                r.name: {
                    "planted": r.total,
                    "flagged": r.total - len(r.missed),
                    "recall": r.recall,
                    "missed": r.missed,
                }
                for r in self.recall
            },  # fmt: skip
        }

    def as_text(self) -> str:
        lines = [
            f"{'benign corpus':<24} {'chunks':>7} {'false flags':>11} {'rate':>9} {'s':>6}",
        ]
        for part in self.benign:
            lines.append(
                f"{part.name:<24} {part.chunks:>7} {len(part.flagged):>11} "
                f"{part.rate:>9.2e} {part.seconds:>6.1f}"
            )
        for part in self.benign:
            for flag in part.flagged:
                sentence = " | ".join(s.replace("\n", " ")[:160] for s in flag.sentences)
                lines.append(f"  {part.name}#{flag.chunk} {','.join(flag.flags)} "
                             f"{flag.score}: {sentence}")  # fmt: skip
        lines.append(f"{'planted instructions':<24} {'planted':>7} {'flagged':>11} {'recall':>9}")
        for r in self.recall:
            lines.append(
                f"{r.name:<24} {r.total:>7} {r.total - len(r.missed):>11} {r.recall:>9.3f}"
            )
        return "\n".join(lines)


def document_chunks(root: Path, limit: int | None = None) -> list[str]:
    """The chunks' texts of every document under ``root`` Cairn accepts (of a manual's
    HTML tree, its pages), in path order, as ingestion cuts them."""

    texts: list[str] = []
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in BY_EXTENSION)
    rendered = {p.with_suffix("") for p in paths if p.suffix.lower() == ".html"}
    for path in paths:
        if "_sources" in path.parts or "_static" in path.parts or not path.is_file():
            continue
        if path.suffix.lower() != ".html" and path.with_suffix("") in rendered:
            continue  # the source of a page whose HTML rendering is read
        try:
            with path.open("rb") as handle:
                parsed = parse_document(handle, file_type=BY_EXTENSION[path.suffix.lower()].key)
        except ParseError:
            continue
        texts.extend(draft.text for draft in chunk_document(parsed))
        if limit is not None and len(texts) >= limit:
            return texts[:limit]
    return texts


def benign_part(name: str, texts: Sequence[str]) -> BenignPart:
    """Scan every chunk; any flag is a false alarm."""

    part = BenignPart(name, chunks=len(texts))
    started = time.perf_counter()
    with usage_recording_paused():
        for index, text in enumerate(texts):
            verdict = passage_scan(text)
            if verdict.flagged:
                spans = sentence_spans(text)
                sentences = tuple(
                    text[a:b] for a, b in spans if sentence_is_instruction(text[a:b])
                ) or (text[:200],)
                part.flagged.append(
                    FalseFlag(name, index, verdict.flags, verdict.injection_score, sentences)
                )
    part.seconds = time.perf_counter() - started
    return part


def planted_sets(limit: int | None = None) -> dict[str, list[str]]:
    planted = [json.loads(line)["text"] for line in PLANTED.read_text().splitlines() if line]
    questions = [json.loads(line) for line in QUESTION_INJECTIONS.read_text().splitlines() if line]
    injections = [row["text"] for row in questions if row["injection"]]
    return {"planted (tests/data)": planted[:limit], "question injections": injections[:limit]}


def recall_of(name: str, instructions: Iterable[str]) -> Recall:
    """Each instruction planted in a benign paragraph: is the paragraph flagged?"""

    result = Recall(name)
    with usage_recording_paused():
        for instruction in instructions:
            result.total += 1
            if INSTRUCTIONS not in passage_scan(HOST.format(planted=instruction)).flags:
                result.missed.append(instruction)
    return result


def passage_report(
    corpora: dict[str, Path] | None = None, *, limit: int | None = None
) -> PassageReport:
    """False flags per benign corpus (default: both manuals, development part first)
    and recall on the planted instructions."""
    corpora = MANUALS if corpora is None else corpora
    benign = [benign_part(name, document_chunks(root, limit)) for name, root in corpora.items()]
    recall = [recall_of(name, texts) for name, texts in planted_sets(limit).items()]
    return PassageReport(benign, recall)
