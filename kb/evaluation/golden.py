"""Golden questions: the JSONL format and its validation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class GoldenSetError(Exception):
    """The question file is malformed; the message names the line."""


@dataclass(frozen=True)
class GoldenQuestion:
    question: str
    answers: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    answerable: bool = True


def load_questions(path: Path) -> list[GoldenQuestion]:
    """Lines of ``{"question", "answers"?, "sources"?, "answerable"?}``; blank lines skipped."""
    questions: list[GoldenQuestion] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question = str(row["question"]).strip()
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise GoldenSetError(f"{path}:{number}: not a question line ({exc})") from exc
        answerable = bool(row.get("answerable", True))
        answers = tuple(str(a) for a in row.get("answers") or ())
        sources = tuple(str(s) for s in row.get("sources") or ())
        if answerable and not (answers or sources):
            raise GoldenSetError(
                f"{path}:{number}: an answerable question needs answers or sources"
            )
        questions.append(GoldenQuestion(question, answers, sources, answerable))
    if not questions:
        raise GoldenSetError(f"{path}: no questions")
    return questions
