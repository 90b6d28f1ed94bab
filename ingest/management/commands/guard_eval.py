"""Measure the guards on labelled data.

`guard_eval injections FILE.jsonl` and `guard_eval pii FILE.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.guard.injection_eval import InjectionReport, injection_report
from kb.guard.pii_eval import PiiReport, pii_report


class Command(BaseCommand):
    help = "Evaluate the prompt-injection detector or the PII redactor on a labelled file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("guard", choices=["injections", "pii"])
        parser.add_argument("file", type=Path)
        parser.add_argument("--json", type=Path, help="Also write the figures as JSON here.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        report: InjectionReport | PiiReport
        if options["guard"] == "injections":
            report = injection_report(path)
        else:
            report = pii_report(path)
        self.stdout.write(report.as_text())
        if options["json"]:
            options["json"].write_text(json.dumps(report.as_dict(), indent=2))
