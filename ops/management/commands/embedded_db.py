"""Start, stop or inspect the embedded PostgreSQL (embedded mode only)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from embedded.postgres import EmbeddedPostgres


class Command(BaseCommand):
    help = "Manage the embedded PostgreSQL under CAIRN_HOME: status, start, stop."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "start", "stop"])

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.CAIRN_EMBEDDED:
            raise CommandError("DATABASE_URL is set: there is no embedded database to manage.")
        server = EmbeddedPostgres(pgdata=settings.CAIRN_HOME / "pgdata")
        action = options["action"]
        if action == "start":
            server.ensure_running()
        elif action == "stop":
            server.stop()
        state = "running" if server.is_running() else "stopped"
        self.stdout.write(f"embedded PostgreSQL at {server.pgdata}: {state}")
