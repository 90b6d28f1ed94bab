"""`injection_fit`: fit the prompt-injection detector on its public training sets.

Chooses the regularisation, the embedding scale and the threshold by cross-validation
on the training sets alone (kb.guard.injection_eval) and writes the result to
kb/guard/injection_model.json. Run `guard_eval injections` afterwards for the figures on
the held-out sets.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from kb.guard.injection import MODEL_PATH
from kb.guard.injection_eval import fit_shipped_model


class Command(BaseCommand):
    help = "Fit the prompt-injection detector on the training sets; write injection_model.json."

    def handle(self, *args: Any, **options: Any) -> None:
        result = fit_shipped_model()
        MODEL_PATH.write_text(json.dumps(result.model.as_dict(), indent=1) + "\n", encoding="utf-8")
        self.stdout.write(
            f"C {result.c}, embedding scale {result.embedding_scale}, threshold "
            f"{result.model.threshold:.4f}; cross-validated on the training sets: recall "
            f"{result.cv_recall:.3f} at FPR {result.cv_false_positive_rate:.3f}\n"
            f"wrote {MODEL_PATH}\n"
        )
