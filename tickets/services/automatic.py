"""Tickets opened without anyone asking: when an answer abstains or is poorly supported,
and from a thumbs-down with a comment.

Decided per account by its TicketSettings (``open_on_abstention``,
``open_below_supported_share``) and, when the account has an ``auto_tickets`` flag in force,
by it: only subjects (askers) whose variant is "on" get automatic tickets; with no such flag
(none, disabled, or at 0 %) the settings decide alone. A thumbs-down with a comment is a
person asking, so it opens a ticket whatever the settings and flags say.
"""

from __future__ import annotations

from chat.models import Feedback, Message
from flags.selectors import flag_rules, subject_for, variant_for
from tickets.models import Ticket
from tickets.selectors.settings import ticket_settings_get
from tickets.services.tickets import ticket_open

AUTO_TICKETS_FLAG = "auto_tickets"


def automatic_origin(
    *, message: Message, supported_share: float | None, threshold: float | None,
    on_abstention: bool,
) -> str | None:  # fmt: skip
    """Why this finished answer calls for a ticket, if it does: it abstained (the documents
    do not say), or too few of its sentences are supported. Failed and stopped answers do
    not: nothing was wrong with what the documents say."""
    if message.status == Message.Status.ABSTAINED:
        return Ticket.Origin.ABSTENTION if on_abstention else None
    if (
        message.status == Message.Status.DONE
        and threshold is not None
        and supported_share is not None
        and supported_share < threshold
    ):
        return Ticket.Origin.LOW_SUPPORT
    return None


def auto_tickets_allowed(*, account_id: int, subject: str) -> bool:
    """The auto_tickets flag's say for this asker: True without such a flag in force."""
    if not any(rule.key == AUTO_TICKETS_FLAG for rule in flag_rules(account_id=account_id)):
        return True
    return variant_for(account_id=account_id, key=AUTO_TICKETS_FLAG, subject=subject) == "on"


def ticket_open_for_answer(*, message: Message, supported_share: float | None) -> Ticket | None:
    """After an answer is persisted: open a ticket if the account's settings (and flag)
    want one for it; None otherwise. Runs inside the answer's transaction."""
    if message.role != Message.Role.ASSISTANT or message.status not in (
        Message.Status.ABSTAINED, Message.Status.DONE,
    ):  # fmt: skip
        return None
    conversation = message.conversation
    settings = ticket_settings_get(account_id=conversation.account_id)
    origin = automatic_origin(
        message=message, supported_share=supported_share,
        threshold=settings.open_below_supported_share,
        on_abstention=settings.open_on_abstention,
    )  # fmt: skip
    if origin is None:
        return None
    subject = subject_for(user_id=conversation.user_id, api_key_id=conversation.api_key_id)
    if not auto_tickets_allowed(account_id=conversation.account_id, subject=subject):
        return None
    return ticket_open(
        account=conversation.account, origin=origin, question="", answer_message=message,
        conversation=conversation, asker=conversation.user, api_key=conversation.api_key,
    )  # fmt: skip


def ticket_open_for_feedback(*, feedback: Feedback) -> Ticket | None:
    """A thumbs-down with a comment opens a ticket for that answer (once: a second one,
    or a changed comment, adds the comment to it as a note)."""
    if feedback.rating != Feedback.Rating.DOWN or not feedback.comment.strip():
        return None
    message = Message.objects.select_related(
        "conversation__account", "conversation__user", "conversation__api_key"
    ).get(pk=feedback.message_id)
    conversation = message.conversation
    return ticket_open(
        account=conversation.account, origin=Ticket.Origin.THUMBS_DOWN, question="",
        answer_message=message, conversation=conversation, asker=feedback.user,
        api_key=feedback.api_key, comment=feedback.comment,
    )  # fmt: skip
