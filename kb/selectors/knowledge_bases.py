"""Finding knowledge bases by the names people type."""

from __future__ import annotations

from kb.models import KnowledgeBase


class KnowledgeBaseNotFound(Exception):
    """No single knowledge base matches; the message says how to disambiguate."""


def knowledge_base_by_slug(*, slug: str, account_slug: str | None = None) -> KnowledgeBase:
    """The knowledge base ``slug`` (of account ``account_slug`` when several accounts use it)."""
    candidates = KnowledgeBase.objects.filter(slug=slug).select_related("account")
    if account_slug:
        candidates = candidates.filter(account__slug=account_slug)
    found = list(candidates[:2])
    if not found:
        where = f" in account {account_slug!r}" if account_slug else ""
        raise KnowledgeBaseNotFound(f"no knowledge base with slug {slug!r}{where}")
    if len(found) > 1:
        raise KnowledgeBaseNotFound(
            f"several accounts have a knowledge base {slug!r}; add --account"
        )
    return found[0]
