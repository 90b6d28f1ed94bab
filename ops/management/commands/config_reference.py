"""Write docs/configuration.md from the settings' help strings; ``--check``: is it current?"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.configuration_reference import COMMAND, REFERENCE_FILE, render


class Command(BaseCommand):
    help = (
        "Write docs/configuration.md (every environment variable, its default and meaning) "
        "from the help= strings in config/settings.py; --check exits 1 if it is stale."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing; exit 1 if the file differs from what would be written.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        text = render()
        current = REFERENCE_FILE.read_text(encoding="utf-8") if REFERENCE_FILE.exists() else ""
        relative = "docs/configuration.md"
        if options["check"]:
            if current != text:
                raise CommandError(f"{relative} is stale. Fix: run `{COMMAND}`.", returncode=1)
            self.stdout.write(f"{relative} is up to date.")
            return
        if current == text:
            self.stdout.write(f"{relative} is up to date.")
            return
        REFERENCE_FILE.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {relative} ({text.count(chr(10))} lines).")
