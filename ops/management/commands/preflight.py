"""Check that Cairn can start here: database, vector extension, broker (and a port)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ops.preflight import (
    check_broker,
    check_database,
    check_port_free,
    check_vector_extension,
    require,
)


class Command(BaseCommand):
    help = "Check the database, the vector extension and the broker; exit 2 with the fix if not."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, help="Also check that this port is free.")
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: Any, **options: Any) -> None:
        checks = [check_database, check_vector_extension, check_broker]
        if options["port"]:
            require(check_port_free(options["host"], options["port"]))
        for check in checks:
            result = require(check())
            self.stdout.write(f"ok  {result.name}: {result.detail}")
