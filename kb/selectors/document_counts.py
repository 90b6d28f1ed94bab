"""How many documents are in each ingestion state, across every account.

Operational telemetry (the /metrics scrape), not a tenant view: nothing here
may reach an account's pages.
"""

from __future__ import annotations

from django.db.models import Count

from kb.models import Document


def document_status_counts() -> dict[str, int]:
    """Documents per status, every status present (0 when none): one GROUP BY."""
    counts = dict.fromkeys(Document.Status.values, 0)
    rows = Document.objects.order_by().values_list("status").annotate(n=Count("pk"))
    for status, n in rows:
        counts[status] = n
    return counts
