"""Measure the PII redactor on labelled sentences (presidio-research's format).

Each row is ``{"full_text", "spans": [{"entity_type", "start_position", "end_position"}]}``.
Per entity type the report counts gold and predicted spans; a true positive is a
predicted span of the same type with exactly the gold start and end. "Overlap
recall" is looser: the share of gold spans that some predicted span of the same
type touches, which is what matters for redaction (a placeholder that misses a
trailing extension still hides the number). Types the redactor does not cover
(names, addresses, ...) are listed apart with their counts, never scored as if
they were attempted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.guard.pii import ENTITY_TYPES, configured_phone_regions, pii_find


@dataclass
class EntityScore:
    """Counts for one entity type; rates are None when their denominator is zero."""

    entity_type: str
    gold: int = 0
    predicted: int = 0
    exact: int = 0
    overlapped: int = 0

    @property
    def precision(self) -> float | None:
        return self.exact / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.exact / self.gold if self.gold else None

    @property
    def overlap_recall(self) -> float | None:
        return self.overlapped / self.gold if self.gold else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "gold": self.gold,
            "predicted": self.predicted,
            "true_positives": self.exact,
            "precision": self.precision,
            "recall": self.recall,
            "overlap_recall": self.overlap_recall,
        }


@dataclass
class PiiReport:
    """Per-type scores over the covered types, and gold counts of the uncovered ones."""

    rows: int
    scores: dict[str, EntityScore]
    not_detected: dict[str, int]
    # The regions whose national phone formats were recognised (CAIRN_PII_PHONE_REGIONS).
    phone_regions: tuple[str, ...] = ()
    # (entity_type, text) of wrong predictions and of missed gold spans, for tuning.
    false_alarms: list[tuple[str, str]] = field(default_factory=list)
    misses: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> EntityScore:
        """Micro-averaged over the covered types."""
        total = EntityScore("ALL COVERED")
        for score in self.scores.values():
            total.gold += score.gold
            total.predicted += score.predicted
            total.exact += score.exact
            total.overlapped += score.overlapped
        return total

    def as_text(self) -> str:
        def rate(value: float | None) -> str:
            return "   -" if value is None else f"{value:.2f}"

        lines = [
            f"PII redactor on {self.rows} sentences (exact span match)",
            f"phone regions: {', '.join(self.phone_regions) or 'none'} "
            "(national formats; +country numbers everywhere)",
            "",
            f"{'entity type':<16} {'gold':>5} {'pred':>5} {'tp':>4} "
            f"{'prec':>5} {'recall':>6} {'overlap':>7}",
        ]
        for score in [*self.scores.values(), self.total]:
            lines.append(
                f"{score.entity_type:<16} {score.gold:>5} {score.predicted:>5} {score.exact:>4} "
                f"{rate(score.precision):>5} {rate(score.recall):>6} "
                f"{rate(score.overlap_recall):>7}"
            )
        lines.append("")
        if self.not_detected:
            listed = ", ".join(f"{name} ({count})" for name, count in self.not_detected.items())
            lines.append(f"Not detected (out of scope, gold spans): {listed}")
        for title, items in (("False alarms", self.false_alarms), ("Misses", self.misses)):
            if items:
                lines.append(f"{title}: " + "; ".join(f"{kind} {text!r}" for kind, text in items))
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "phone_regions": list(self.phone_regions),
            "entity_types": {name: score.as_dict() for name, score in self.scores.items()},
            "total": self.total.as_dict(),
            "not_detected": self.not_detected,
            "false_alarms": [list(item) for item in self.false_alarms],
            "misses": [list(item) for item in self.misses],
        }


def pii_report(path: Path) -> PiiReport:
    """Run `pii_find` over every sentence of ``path`` and score it per entity type."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    scores = {entity_type: EntityScore(entity_type) for entity_type in ENTITY_TYPES}
    not_detected: dict[str, int] = {}
    report = PiiReport(
        rows=len(rows),
        scores=scores,
        not_detected=not_detected,
        phone_regions=configured_phone_regions(),
    )
    for row in rows:
        text: str = row["full_text"]
        gold = [
            (span["entity_type"], span["start_position"], span["end_position"])
            for span in row["spans"]
        ]
        predicted = [(span.entity_type, span.start, span.end) for span in pii_find(text)]
        for kind, start, end in gold:
            if kind not in scores:
                not_detected[kind] = not_detected.get(kind, 0) + 1
                continue
            score = scores[kind]
            score.gold += 1
            if (kind, start, end) in predicted:
                score.exact += 1
            else:
                report.misses.append((kind, text[start:end]))
            if any(p[0] == kind and p[1] < end and start < p[2] for p in predicted):
                score.overlapped += 1
        for kind, start, end in predicted:
            scores[kind].predicted += 1
            if (kind, start, end) not in gold:
                report.false_alarms.append((kind, text[start:end]))
    report.not_detected = dict(sorted(not_detected.items(), key=lambda item: -item[1]))
    return report
