"""Load the demo knowledge base (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ingest.services.demo import demo_load


class Command(BaseCommand):
    help = "Create the demo account and knowledge base and upload its documents (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_load()
        self.stdout.write(
            f"demo knowledge base '{result.knowledge_base.slug}': {len(result.created)} added, "
            f"{len(result.existing)} already present, {len(result.rejected)} rejected"
        )
        for reason in result.rejected:
            self.stderr.write(f"  rejected: {reason}")
