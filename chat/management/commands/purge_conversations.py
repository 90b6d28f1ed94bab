"""Apply the retention policy now (what beat does every CAIRN_RETENTION_INTERVAL_SECONDS)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.selectors.retention import PurgeReport, conversations_purge_preview
from chat.services.retention import conversations_purge, retention_cutoff


class Command(BaseCommand):
    help = (
        "Remove the text of questions, answers, cited passages and feedback comments older "
        "than the retention period; usage figures are kept. Prints the counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int,
            help="Keep this many days instead of CAIRN_RETENTION_DAYS (0: keep everything).",
        )  # fmt: skip
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be removed."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.CAIRN_RETENTION_DAYS if options["days"] is None else options["days"]
        if days < 0:
            raise CommandError(f"--days {days} is negative; use 0 to keep everything.")
        cutoff = retention_cutoff(days=days)
        if cutoff is None:
            self.stdout.write("Retention is 0 days (keep everything): nothing to purge.")
            return
        self.stdout.write(f"Older than {days} days: created before {cutoff:%Y-%m-%d %H:%M %Z}.")
        if options["dry_run"]:
            report = conversations_purge_preview(older_than=cutoff)
        else:
            report = conversations_purge(older_than=cutoff)
        self._print(report, dry_run=options["dry_run"])

    def _print(self, report: PurgeReport, *, dry_run: bool) -> None:
        for field in fields(report):
            label = field.name.replace("_", " ")
            self.stdout.write(f"  {label}: {getattr(report, field.name)}")
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
        else:
            self.stdout.write(self.style.SUCCESS("Purged."))
