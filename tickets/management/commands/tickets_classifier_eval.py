"""Cross-validated figures of the local ticket classifier on the labelled set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tickets.classification.evaluation import LABELLED_SET, Scores, cross_validate
from tickets.classification.examples import labelled_tickets_load


def _row(name: str, scores: Scores) -> str:
    return (
        f"{name:<8} {scores.tickets:>7} {scores.category_accuracy:>9.3f} "
        f"{scores.urgent_recall:>9.3f} {scores.urgent_precision:>9.3f} "
        f"{scores.urgency_accuracy:>9.3f} {scores.sentiment_accuracy:>9.3f}"
    )


class Command(BaseCommand):
    help = (
        "k-fold cross-validation of the local ticket classifier: held-out category "
        "accuracy, urgent recall and precision, per fold and pooled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", default=str(LABELLED_SET), help="Labelled JSONL set.")
        parser.add_argument("--folds", type=int, default=5)
        parser.add_argument("--seed", type=int, default=20)
        parser.add_argument("--mistakes", action="store_true", help="List wrong categories.")

    def handle(self, *args: Any, **options: Any) -> None:
        tickets = labelled_tickets_load(Path(options["path"]))
        result = cross_validate(tickets, folds=options["folds"], seed=options["seed"])
        self.stdout.write(
            f"{'fold':<8} {'tickets':>7} {'category':>9} {'urg.rec':>9} {'urg.prec':>9} "
            f"{'urgency':>9} {'sentiment':>9}"
        )
        for number, scores in enumerate(result.folds, start=1):
            self.stdout.write(_row(str(number), scores))
        self.stdout.write(_row("pooled", result.pooled))
        if options["mistakes"]:
            for ticket, predicted in result.mistakes:
                text = " ".join(ticket.text.split())[:90]
                self.stdout.write(f"{ticket.id}: {ticket.category} -> {predicted.category}: {text}")
        self.stdout.write(
            json.dumps(
                {
                    "folds": options["folds"], "seed": options["seed"],
                    "tickets": result.pooled.tickets,
                    "category_accuracy": round(result.pooled.category_accuracy, 4),
                    "urgent_recall": round(result.pooled.urgent_recall, 4),
                    "urgent_precision": round(result.pooled.urgent_precision, 4),
                    "urgency_accuracy": round(result.pooled.urgency_accuracy, 4),
                    "sentiment_accuracy": round(result.pooled.sentiment_accuracy, 4),
                }
            )
        )  # fmt: skip
