"""Measure the guards on labelled data.

`guard_eval injections [FILE.jsonl]` (default: the held-out public sets the detector was
never fitted on), `guard_eval pii FILE.json` and `guard_eval passages [FOLDER]`. It lives
in ingest because the passage figures chunk documents as ingestion does (kb may not
import ingest: docs/architecture.md, Layers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.passage_eval import PassageReport, passage_report
from kb.guard.injection_eval import InjectionReport, injection_report
from kb.guard.pii_eval import PiiReport, pii_report


class Command(BaseCommand):
    help = (
        "Evaluate the prompt-injection detector or the PII redactor on a labelled file, or "
        "the passage scan's false flags on folders of benign documents (and its recall on "
        "planted instructions)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("guard", choices=["injections", "pii", "passages"])
        parser.add_argument(
            "file",
            type=Path,
            nargs="?",
            help="Labelled file; for injections it defaults to the held-out deepset test split; "
            "for passages a folder of benign documents (default: the Python and PostgreSQL "
            "manuals of Debian's python3.11-doc and postgresql-doc-15).",
        )
        parser.add_argument("--json", type=Path, help="Also write the figures as JSON here.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path | None = options["file"]
        report: InjectionReport | PiiReport | PassageReport
        if options["guard"] == "passages":
            if path is not None and not path.is_dir():
                raise CommandError(f"{path}: no such folder")
            report = passage_report(None if path is None else {path.name: path})
        elif path is not None and not path.is_file():
            raise CommandError(f"{path}: no such file")
        elif options["guard"] == "injections":
            report = injection_report(path)
        else:
            if path is None:
                raise CommandError("guard_eval pii needs a file")
            report = pii_report(path)
        self.stdout.write(report.as_text())
        if options["json"]:
            options["json"].write_text(json.dumps(report.as_dict(), indent=2))
