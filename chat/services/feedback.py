"""Thumbs up or down on an answer."""

from __future__ import annotations

from typing import Any

from chat.models import Feedback, Message
from chat.signals import feedback_given

MAX_COMMENT_CHARS = 4000


class FeedbackRejected(Exception):
    pass


def feedback_give(
    *,
    message: Message,
    user_id: int | None,
    rating: str,
    comment: str = "",
    api_key_id: int | None = None,
) -> Feedback:
    """Record (or change) a rating of an answer: one per user (or, through the API, per
    API key) and answer."""
    if message.role != Message.Role.ASSISTANT or not message.is_final:
        raise FeedbackRejected("Only a finished answer can be rated.")
    if message.purged_at is not None:
        raise FeedbackRejected("This answer was removed under the retention policy.")
    if rating not in Feedback.Rating.values:
        raise FeedbackRejected("Rate an answer up or down.")
    owner: dict[str, Any] = (
        {"user_id": user_id} if user_id else {"user_id": None, "api_key_id": api_key_id}
    )
    feedback, created = Feedback.objects.update_or_create(
        message=message,
        **owner,
        defaults={"rating": rating, "comment": comment.strip()[:MAX_COMMENT_CHARS]},
    )
    feedback_given.send(Feedback, feedback=feedback, created=created)  # a thumbs-down ticket
    return feedback
