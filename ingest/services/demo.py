"""The demo knowledge base shipped in the repository (kb/demo/documents)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.core.files import File

from ingest.services.uploads import UploadRejected, document_create
from kb.models import KnowledgeBase
from kb.services.accounts import account_ensure, knowledge_base_ensure

DEMO_DOCUMENTS = Path(__file__).resolve().parent.parent.parent / "kb" / "demo" / "documents"
DEMO_ACCOUNT_SLUG = "demo"
DEMO_KNOWLEDGE_BASE_SLUG = "ledgerly-support"


@dataclass
class DemoLoadResult:
    knowledge_base: KnowledgeBase
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def demo_load(*, directory: Path = DEMO_DOCUMENTS) -> DemoLoadResult:
    """Create the demo account and knowledge base and upload the demo documents.

    Idempotent: documents already present (same bytes) are left as they are.
    """
    account = account_ensure(slug=DEMO_ACCOUNT_SLUG, name="Ledgerly (demo)")
    knowledge_base = knowledge_base_ensure(
        account=account,
        slug=DEMO_KNOWLEDGE_BASE_SLUG,
        name="Ledgerly support",
        description="Support articles for Ledgerly, a fictional invoicing product.",
    )
    result = DemoLoadResult(knowledge_base=knowledge_base)
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        with path.open("rb") as handle:
            try:
                outcome = document_create(
                    knowledge_base=knowledge_base, upload=File(handle, name=path.name)
                )
            except UploadRejected as exc:
                result.rejected.append(str(exc))
                continue
        (result.created if outcome.created else result.existing).append(path.name)
    return result
