"""Index chunks for keyword search under the current tokenisation, online, in batches.

Needed once after upgrading to the shared keyword index, and after a change of the
tokenizer or of CAIRN_BM25_STOP_WORDS; `make run` runs it. Searches go on meanwhile.

    manage.py keyword_reindex [--kb SLUG] [--account SLUG] [--batch-size N] [--check]
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.models import KnowledgeBase
from kb.search.keyword import keyword_scheme
from kb.services.keywords import BATCH_SIZE, keywords_reindex, keywords_stale


class Command(BaseCommand):
    help = "Index chunks for keyword search under the current tokenisation (online)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kb", metavar="SLUG", help="only knowledge bases with this slug")
        parser.add_argument("--account", metavar="SLUG", help="only this account's")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
        parser.add_argument(
            "--check", action="store_true",
            help="only count the chunks to re-index; exit 1 if there are any",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[int] | None = None
        if options["kb"] or options["account"]:
            knowledge_bases = KnowledgeBase.objects.all()
            if options["kb"]:
                knowledge_bases = knowledge_bases.filter(slug=options["kb"])
            if options["account"]:
                knowledge_bases = knowledge_bases.filter(account__slug=options["account"])
            ids = list(knowledge_bases.values_list("pk", flat=True))
            if not ids:
                raise CommandError("no knowledge base matches")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        stale = keywords_stale(knowledge_base_ids=ids)
        if options["check"]:
            self.stdout.write(f"{stale} chunks to re-index for scheme {keyword_scheme()}")
            if stale:
                raise SystemExit(1)
            return
        done = keywords_reindex(
            knowledge_base_ids=ids,
            batch_size=options["batch_size"],
            progress=lambda n: self.stdout.write(f"  {n}/{stale}") if n % 10_000 == 0 else None,
        )
        self.stdout.write(f"{done} chunks re-indexed for keyword search ({keyword_scheme()})")
