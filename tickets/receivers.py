"""What tickets does when chat says an answer finished or feedback was given.

chat sits below tickets and cannot call it; it sends ``chat.signals`` and these receivers
(connected in ``TicketsConfig.ready``) hand over to the services. A receiver runs inside
the sender's transaction (the answer's persist): its work is in a savepoint and its
failures are logged, so a problem opening a ticket never loses the answer or the feedback.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from chat.models import Feedback, Message
from tickets.services.automatic import ticket_open_for_answer, ticket_open_for_feedback

logger = logging.getLogger(__name__)


def on_answer_finished(
    sender: Any, *, message: Message, supported_share: float | None, **kwargs: Any
) -> None:
    try:
        with transaction.atomic():
            ticket_open_for_answer(message=message, supported_share=supported_share)
    except Exception:
        logger.exception("answer %s: the automatic ticket could not be opened", message.pk)


def on_feedback_given(sender: Any, *, feedback: Feedback, **kwargs: Any) -> None:
    try:
        with transaction.atomic():
            ticket_open_for_feedback(feedback=feedback)
    except Exception:
        logger.exception("feedback %s: the thumbs-down ticket could not be opened", feedback.pk)
