"""Classifications kept per account for identical text (and the same categories)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from kb.models import Account
from tickets.classification.outcome import Classification
from tickets.models import ClassificationCacheEntry


def normalised_text(text: str) -> str:
    """Whitespace and letter case do not make a ticket say something else."""
    return " ".join(text.split()).casefold()


def classification_cache_key(text: str, categories: Sequence[str]) -> str:
    payload = json.dumps([normalised_text(text), list(categories)], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def classification_cache_get(*, account: Account, key: str) -> Classification | None:
    entry = ClassificationCacheEntry.objects.filter(account=account, key=key).first()
    if entry is None:
        return None
    try:
        return Classification.from_json(entry.result, cached=True)
    except (KeyError, TypeError, ValueError):  # a row from an older shape: classify again
        return None


def classification_cache_put(*, account: Account, key: str, result: Classification) -> None:
    """Keep ``result``; a concurrent classification of the same text keeps the first."""
    ClassificationCacheEntry.objects.bulk_create(
        [ClassificationCacheEntry(account=account, key=key, result=result.as_json())],
        ignore_conflicts=True,
    )
