"""Bulk-load files and folders into a knowledge base, with progress and a summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingest.filetypes import BY_EXTENSION
from ingest.services.pipeline import TransientIngestError, document_ingest
from ingest.services.uploads import UploadRejected, UploadResult, document_create
from kb.models import Document, KnowledgeBase
from kb.selectors.knowledge_bases import KnowledgeBaseNotFound, knowledge_base_by_slug

NO_PROGRESS_HINT_SECONDS = 30


@dataclass
class Summary:
    queued: dict[int, str] = field(default_factory=dict)  # document id -> source
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    new_versions: int = 0


def collect_files(paths: list[str]) -> list[tuple[Path, str]]:
    """(file, source) pairs; folders are walked for supported files, hidden ones skipped.

    The source is the path relative to the folder given, prefixed with its name,
    so the same tree loaded again from anywhere maps onto the same documents.
    """
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            found.append((path, path.name))
        elif path.is_dir():
            root = path.resolve()
            for file in sorted(root.rglob("*")):
                relative = file.relative_to(root)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if file.is_file() and file.suffix.lower() in BY_EXTENSION:
                    found.append((file, f"{root.name}/{relative.as_posix()}"))
        else:
            raise CommandError(f"{raw}: no such file or folder")
    return found


class Command(BaseCommand):
    help = "Load files and folders into a knowledge base and wait until they are searchable."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", help="Files and folders (walked recursively).")
        parser.add_argument("--kb", required=True, help="Knowledge base slug.")
        parser.add_argument("--account", help="Account slug (needed if the kb slug is ambiguous).")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--inline", action="store_true", help="Process here instead of in the workers."
        )
        mode.add_argument("--no-wait", action="store_true", help="Queue and exit at once.")

    def handle(self, *args: Any, **options: Any) -> None:
        knowledge_base = self._knowledge_base(options["kb"], options["account"])
        files = collect_files(options["paths"])
        if not files:
            raise CommandError("no supported files found (.txt, .md, .html, .pdf, .docx)")
        summary = self._upload(knowledge_base, files)
        if options["no_wait"]:
            self.stdout.write(f"Queued {len(summary.queued)} document(s).")
        elif options["inline"]:
            self._process_inline(summary)
        else:
            self._wait_for_workers(summary)
        failed = self._report(summary, waited=not options["no_wait"])
        if failed:
            raise CommandError(f"{failed} document(s) failed")

    @staticmethod
    def _knowledge_base(slug: str, account: str | None) -> KnowledgeBase:
        try:
            return knowledge_base_by_slug(slug=slug, account_slug=account)
        except KnowledgeBaseNotFound as exc:
            raise CommandError(str(exc)) from exc

    def _upload(self, knowledge_base: KnowledgeBase, files: list[tuple[Path, str]]) -> Summary:
        summary = Summary()
        for path, source in tqdm(files, desc="Uploading", unit="file", disable=None):
            with path.open("rb") as handle:
                try:
                    outcome = document_create(
                        knowledge_base=knowledge_base,
                        upload=File(handle, name=path.name),
                        source=source,
                    )
                except UploadRejected as exc:
                    summary.rejected.append(f"{source}: {exc.reason}")
                    continue
            if outcome.result is UploadResult.DUPLICATE:
                summary.duplicates.append(source)
            else:
                summary.queued[outcome.document.pk] = source
                summary.new_versions += outcome.result is UploadResult.UPDATED
        return summary

    def _process_inline(self, summary: Summary) -> None:
        for document_id in tqdm(list(summary.queued), desc="Processing", unit="doc", disable=None):
            try:
                document_ingest(document_id=document_id)
            except TransientIngestError:
                pass  # left pending with its reason; the summary reports it

    def _wait_for_workers(self, summary: Summary) -> None:
        ids = list(summary.queued)
        settled = {Document.Status.READY, Document.Status.FAILED}
        last_change, last_state = time.monotonic(), None
        hinted = False
        with tqdm(total=len(ids), desc="Processing", unit="doc", disable=None) as bar:
            while True:
                rows = list(
                    Document.objects.filter(pk__in=ids).values_list("status", "chunks_embedded")
                )
                done = sum(status in settled for status, _ in rows)
                chunks = sum(embedded for _, embedded in rows)
                bar.n = done
                bar.set_postfix(chunks=chunks)
                bar.refresh()
                if done >= len(rows):
                    return
                if (done, chunks) != last_state:
                    last_change, last_state = time.monotonic(), (done, chunks)
                elif not hinted and time.monotonic() - last_change > NO_PROGRESS_HINT_SECONDS:
                    bar.write(
                        "No progress for 30 s: is a worker running? (`make run` starts one; "
                        "or use --inline.)"
                    )
                    hinted = True
                time.sleep(0.5)

    def _report(self, summary: Summary, *, waited: bool) -> int:
        documents = Document.objects.filter(pk__in=list(summary.queued))
        by_status: dict[str, list[Document]] = {}
        for document in documents:
            by_status.setdefault(document.status, []).append(document)
        ready = by_status.get(Document.Status.READY, [])
        failed = by_status.get(Document.Status.FAILED, [])
        waiting = len(summary.queued) - len(ready) - len(failed)
        self.stdout.write(
            f"ok: {len(ready)} (of which {summary.new_versions} new versions), "
            f"skipped as duplicate: {len(summary.duplicates)}, "
            f"failed: {len(failed) + len(summary.rejected)}"
            + (f", still queued: {waiting}" if waiting and waited else "")
        )
        for reason in summary.rejected:
            self.stderr.write(f"  rejected  {reason}")
        for document in failed:
            self.stderr.write(f"  failed    {summary.queued[document.pk]}: {document.error}")
        return len(failed) + len(summary.rejected)
