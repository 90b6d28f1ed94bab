"""Thumbs up or down on an answer."""

from __future__ import annotations

from chat.models import Feedback, Message

MAX_COMMENT_CHARS = 4000


class FeedbackRejected(Exception):
    pass


def feedback_give(*, message: Message, user_id: int, rating: str, comment: str = "") -> Feedback:
    """Record (or change) the user's rating of an answer; one per user and answer."""
    if message.role != Message.Role.ASSISTANT or not message.is_final:
        raise FeedbackRejected("Only a finished answer can be rated.")
    if rating not in Feedback.Rating.values:
        raise FeedbackRejected("Rate an answer up or down.")
    feedback, _ = Feedback.objects.update_or_create(
        message=message,
        user_id=user_id,
        defaults={"rating": rating, "comment": comment.strip()[:MAX_COMMENT_CHARS]},
    )
    return feedback
