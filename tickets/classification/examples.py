"""Labelled tickets: the shipped examples the local classifier is fitted on, and the
labelled set it is measured on (the same format)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tickets.classification.outcome import SENTIMENTS, URGENCIES

EXAMPLES_PATH = Path(__file__).with_name("examples.jsonl")


@dataclass(frozen=True)
class LabelledTicket:
    text: str
    category: str
    urgency: str
    sentiment: str
    id: str = ""


def labelled_tickets_load(path: Path = EXAMPLES_PATH) -> tuple[LabelledTicket, ...]:
    """One ticket per JSON line ``{"id", "text", "category", "urgency", "sentiment"}``;
    a line with an unknown urgency or sentiment is an error, not a silent skip."""
    tickets = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        ticket = LabelledTicket(
            text=row["text"], category=row["category"], urgency=row["urgency"],
            sentiment=row["sentiment"], id=str(row.get("id", number)),
        )  # fmt: skip
        if ticket.urgency not in URGENCIES or ticket.sentiment not in SENTIMENTS:
            raise ValueError(f"{path}:{number}: unknown urgency or sentiment")
        tickets.append(ticket)
    return tuple(tickets)
