"""Store the vectors of every quotable unit of existing knowledge bases (kb.services.units).

Ingestion does it for each new document; this fills knowledge bases ingested before, and
with ``--prune`` deletes the stored vectors no chunk needs any more (deleted documents,
older versions, a former embedding model, sentences of checked answers).

    manage.py units_embed [--kb SLUG] [--account SLUG] [--api-models] [--prune]
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.models import KnowledgeBase
from kb.services.units import knowledge_base_units_embed, knowledge_base_units_prune


class Command(BaseCommand):
    help = "Embed and store the quotable units of knowledge bases' chunks (searches read them)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kb", metavar="SLUG", help="only knowledge bases with this slug")
        parser.add_argument("--account", metavar="SLUG", help="only this account's")
        parser.add_argument(
            "--api-models", action="store_true",
            help="also for third-party embedding APIs (billed per unit; otherwise lazy)",
        )  # fmt: skip
        parser.add_argument(
            "--prune", action="store_true", help="then delete stored vectors no unit has"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        knowledge_bases = KnowledgeBase.objects.select_related("account").order_by("pk")
        if options["kb"]:
            knowledge_bases = knowledge_bases.filter(slug=options["kb"])
        if options["account"]:
            knowledge_bases = knowledge_bases.filter(account__slug=options["account"])
        if not knowledge_bases.exists():
            raise CommandError("no knowledge base matches")
        for knowledge_base in knowledge_bases:
            written = knowledge_base_units_embed(
                knowledge_base_id=knowledge_base.pk, api_models=options["api_models"]
            )
            line = f"{knowledge_base.account.slug}/{knowledge_base.slug}: {written} stored"
            if options["prune"]:
                pruned = knowledge_base_units_prune(knowledge_base_id=knowledge_base.pk)
                line += f", {pruned} pruned"
            self.stdout.write(line)
