"""What the retention purge would change: counts for a dry run, never content."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from chat.models import Citation, Conversation, Feedback, Message
from llm.models import SemanticCacheEntry

UNFINISHED = Message.UNFINISHED_STATUSES


@dataclass
class PurgeReport:
    """What a purge changed (or, for a dry run, would change): counts, never content."""

    messages: int = 0
    unfinished_answers: int = 0
    citations: int = 0
    feedback_comments: int = 0
    conversation_titles: int = 0
    cache_entries: int = 0

    def __iadd__(self, other: PurgeReport) -> PurgeReport:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    def summary(self) -> str:
        return ", ".join(f"{field.name}={getattr(self, field.name)}" for field in fields(self))


def conversations_purge_preview(*, older_than: datetime) -> PurgeReport:
    """What ``conversations_purge(older_than=…)`` would change now, changing nothing."""
    messages = Message.objects.filter(purged_at__isnull=True, created_at__lt=older_than)
    return PurgeReport(
        messages=messages.count(),
        unfinished_answers=messages.filter(status__in=UNFINISHED).count(),
        citations=Citation.objects.filter(message__in=messages).exclude(excerpt="").count(),
        feedback_comments=(
            Feedback.objects.filter(message__in=messages).exclude(comment="").count()
        ),
        conversation_titles=(
            Conversation.objects.filter(pk__in=messages.values("conversation_id"))
            .exclude(title="")
            .count()
        ),
        cache_entries=SemanticCacheEntry.objects.filter(created_at__lt=older_than).count(),
    )
