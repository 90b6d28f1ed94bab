"""Tickets: opening one, and the staff's actions on it (assign, status, reply, note).

Every change writes a ``TicketEvent`` in the same transaction, under the ticket's row lock
(``select_for_update``), so two agents acting at once are serialised: each sees what the
other did, and the timeline records both in the order they happened.

Opening is idempotent per question: a ticket remembers the question message it was opened
for (``question_message``, unique when set), so a second thumbs-down, a "Talk to a person"
after an automatic ticket, or a regenerated answer that abstains again, all return the
ticket already open for that question (a new comment becomes a note on it). Triage
(classify → route → notify → draft) is queued once the opening commits.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from chat.models import Citation, Conversation, Message
from chat.services.conversations import agent_message_add
from config.dispatch import enqueue_on_commit
from kb.models import Account, ApiKey, Membership
from tickets.models import Ticket, TicketEvent

logger = logging.getLogger(__name__)

SUBJECT_CHARS = 80
MAX_TEXT_CHARS = 20_000  # a question, comment, reply or note; longer is refused
# The same reply body sent again this soon after the last one is a double send (a second
# click, a retried request), not a second message to the asker.
REPLY_REPEAT_WINDOW = timedelta(minutes=10)

TRIAGE_TASK = "tickets.tasks.ticket_triage_task"


class TicketRejected(ValueError):
    """The ticket cannot be opened or the action done, for a reason to show the person."""


def _text(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise TicketRejected(f"{what} is empty.")
    if len(text) > MAX_TEXT_CHARS:
        raise TicketRejected(f"{what} is longer than {MAX_TEXT_CHARS:,} characters.")
    return text


def _subject(subject: str, question: str) -> str:
    line = " ".join((subject or question).split())
    limit = 200 if subject else SUBJECT_CHARS
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _sources(answer: Message | None) -> list[dict[str, Any]]:
    """What the answer cited, or for an abstention the closest passages it found."""
    if answer is None:
        return []
    citations = list(answer.citations.order_by("kind", "number"))
    chosen = [c for c in citations if c.kind == Citation.Kind.CITED] or citations
    return [
        {
            "number": c.number, "chunk_id": c.chunk_id, "document_id": c.document_id,
            "title": c.document_title, "heading_path": c.heading_path, "excerpt": c.excerpt,
        }
        for c in chosen
    ]  # fmt: skip


def _same_account(account: Account, **objects: Any) -> None:
    """Every object given belongs to ``account``: a ticket never links another tenant's rows."""
    for name, obj in objects.items():
        if obj is None:
            continue
        account_id = obj.conversation.account_id if isinstance(obj, Message) else obj.account_id
        if account_id != account.pk:
            raise ValueError(f"{name} {obj.pk} is not of account {account.pk}")


def _is_member(user: AbstractBaseUser, account_id: int) -> bool:
    return Membership.objects.filter(user_id=user.pk, account_id=account_id).exists()


@transaction.atomic
def ticket_open(
    *,
    account: Account,
    origin: str,
    question: str,
    answer_message: Message | None = None,
    question_message: Message | None = None,
    conversation: Conversation | None = None,
    asker: AbstractBaseUser | None = None,
    api_key: ApiKey | None = None,
    comment: str = "",
    subject: str = "",
) -> Ticket:
    """Open a ticket with a snapshot of the question, Cairn's answer and its sources; or,
    when one is already open for this question, return that one (a comment given now is
    added to it as a note by the asker).

    ``question_message`` defaults to the answer's question and ``conversation`` to the
    answer's conversation; ``question`` may be blank when a question message is given.
    Raises TicketRejected for an empty or oversized text, ValueError for objects of
    another account. Triage is queued when the transaction commits.
    """
    if origin not in Ticket.Origin.values:
        raise ValueError(f"unknown ticket origin {origin!r}")
    if answer_message is not None and question_message is None:
        question_message = answer_message.question
    message = answer_message or question_message
    if conversation is None and message is not None:
        conversation = message.conversation
    _same_account(
        account, answer_message=answer_message, question_message=question_message,
        conversation=conversation, api_key=api_key,
    )  # fmt: skip
    if not question.strip() and question_message is not None:
        question = question_message.content
    question = _text(question, "The question")
    comment = comment.strip()[:MAX_TEXT_CHARS]

    if question_message is not None:
        # Serialises openings for one question: the second one finds the first's ticket.
        Message.objects.select_for_update().filter(pk=question_message.pk).first()
        existing = (
            Ticket.objects.select_for_update().filter(question_message=question_message).first()
        )
        if existing is not None:
            if comment:
                _asker_note(existing, comment, asker, origin)
            return existing

    ticket = Ticket.objects.create(
        account=account, origin=origin, conversation=conversation,
        question_message=question_message, answer_message=answer_message,
        asker_id=asker.pk if asker is not None else None, api_key=api_key,
        subject=_subject(subject, question), question=question,
        answer="" if answer_message is None or answer_message.purged_at else answer_message.content,
        sources=_sources(answer_message), comment=comment,
    )  # fmt: skip
    _event(ticket, TicketEvent.Kind.CREATED, author=asker, data={"origin": origin})
    enqueue_on_commit(TRIAGE_TASK, ticket.pk, quiet=True)
    logger.info(
        "ticket %s opened (%s) in account %s", ticket.pk, origin, account.pk,
        extra={"ticket_id": ticket.pk, "origin": origin, "account_id": account.pk},
    )  # fmt: skip
    return ticket


def ticket_open_from_conversation(
    *,
    conversation: Conversation,
    user: AbstractBaseUser | None,
    comment: str = "",
    origin: str = Ticket.Origin.ASKED,
    api_key: ApiKey | None = None,
    question: str = "",
    subject: str = "",
) -> Ticket:
    """The "Talk to a person" action: a ticket for the conversation's last question and
    its current answer (if it has one yet), asked by ``user`` (default: the conversation's
    owner).

    Raises TicketRejected when nothing has been asked in the conversation yet.
    """
    asked = (
        conversation.messages.filter(role=Message.Role.USER).order_by("-created_at", "-id").first()
    )
    if asked is None:
        raise TicketRejected("Ask your question first; a person then sees it with Cairn's answer.")
    answer = (
        asked.answers.filter(superseded=False, status__in=Message.FINAL_STATUSES)
        .order_by("-created_at", "-id")
        .first()
    )
    return ticket_open(
        account=conversation.account, origin=origin, question=question,
        question_message=asked, answer_message=answer, conversation=conversation,
        asker=user if user is not None else conversation.user,
        api_key=api_key if api_key is not None else conversation.api_key,
        comment=comment, subject=subject,
    )  # fmt: skip


def _event(
    ticket: Ticket,
    kind: str,
    *,
    author: AbstractBaseUser | None = None,
    body: str = "",
    data: dict[str, Any] | None = None,
) -> TicketEvent:
    return TicketEvent.objects.create(
        ticket=ticket, kind=kind, author_id=author.pk if author is not None else None,
        body=body, data=data or {},
    )  # fmt: skip


def _shown_name(user: AbstractBaseUser | None) -> str:
    """The agent as the asker sees them: their full name, else their user name."""
    if user is None:
        return ""
    full_name = getattr(user, "get_full_name", lambda: "")()
    return str(full_name or user.get_username())


def _asker_note(ticket: Ticket, comment: str, asker: AbstractBaseUser | None, origin: str) -> None:
    """The asker wrote again about a ticket (locked): their words go on the timeline, and a
    ticket that was waiting on them, or solved, is worked again."""
    _event(ticket, TicketEvent.Kind.NOTE, author=asker, body=comment,
           data={"origin": origin, "from_asker": True})  # fmt: skip
    changed = ["updated_at"]
    if ticket.status in (Ticket.Status.WAITING, Ticket.Status.SOLVED):
        again = Ticket.Status.ASSIGNED if ticket.assignee_id else Ticket.Status.OPEN
        changed += _status_change(ticket, again, asker)
    ticket.save(update_fields=changed)


def _locked(ticket: Ticket) -> Ticket:
    """The ticket's current row, locked until the transaction ends."""
    return Ticket.objects.select_for_update().get(pk=ticket.pk)


def _refresh(ticket: Ticket, current: Ticket) -> Ticket:
    """Copy the current row into the caller's instance, so it sees what was written."""
    ticket.__dict__.update(
        {f.attname: getattr(current, f.attname) for f in Ticket._meta.concrete_fields}
    )
    return ticket


def _status_change(ticket: Ticket, status: str, by: AbstractBaseUser | None) -> list[str]:
    """Set ``status`` on the locked row with its timestamps and a STATUS event; the fields
    changed (none when it already has it)."""
    if ticket.status == status:
        return []
    previous = ticket.status
    ticket.status = status
    changed = ["status"]
    if status == Ticket.Status.SOLVED:
        ticket.solved_at = timezone.now()
        changed.append("solved_at")
    elif ticket.solved_at is not None:  # reopened: time to resolution starts over
        ticket.solved_at = None
        changed.append("solved_at")
    _event(ticket, TicketEvent.Kind.STATUS, author=by, data={"from": previous, "to": status})
    return changed


@transaction.atomic
def ticket_assign(
    *, ticket: Ticket, assignee: AbstractBaseUser | None, by: AbstractBaseUser | None
) -> Ticket:
    """Give the ticket to ``assignee`` (a member of its account), or take it back (None).

    An open ticket becomes assigned; one taken back while assigned is open again. Assigning
    the current assignee again changes nothing and records nothing.
    """
    current = _locked(ticket)
    if assignee is not None and not _is_member(assignee, current.account_id):
        raise TicketRejected("Only a member of the ticket's account can be assigned to it.")
    new_id = assignee.pk if assignee is not None else None
    if current.assignee_id == new_id:
        return _refresh(ticket, current)
    previous = current.assignee_id
    current.assignee_id = new_id
    changed = ["assignee", "updated_at"]
    _event(current, TicketEvent.Kind.ASSIGNED, author=by, data={"from": previous, "to": new_id})
    if new_id is not None and current.status == Ticket.Status.OPEN:
        changed += _status_change(current, Ticket.Status.ASSIGNED, by)
    elif new_id is None and current.status == Ticket.Status.ASSIGNED:
        changed += _status_change(current, Ticket.Status.OPEN, by)
    current.save(update_fields=changed)
    return _refresh(ticket, current)


@transaction.atomic
def ticket_status_set(*, ticket: Ticket, status: str, by: AbstractBaseUser | None) -> Ticket:
    """Move the ticket to ``status``: solved stamps ``solved_at``, leaving solved clears it.

    "assigned" needs an assignee (use ticket_assign); the same status again is a no-op.
    """
    if status not in Ticket.Status.values:
        raise TicketRejected(
            f"Unknown status {status!r}; use one of {', '.join(Ticket.Status.values)}."
        )
    current = _locked(ticket)
    if status == Ticket.Status.ASSIGNED and current.assignee_id is None:
        raise TicketRejected("Assign the ticket to someone to make it assigned.")
    changed = _status_change(current, status, by)
    if changed:
        current.save(update_fields=[*changed, "updated_at"])
    return _refresh(ticket, current)


@transaction.atomic
def ticket_reply_send(*, ticket: Ticket, body: str, by: AbstractBaseUser | None) -> TicketEvent:
    """Reply to the asker: the reply goes into their conversation (if the ticket has one)
    as a message of role ``agent``; the first reply stamps ``first_response_at``; the
    ticket then waits on the asker.

    The same body as the last reply within REPLY_REPEAT_WINDOW is a double send: the first
    one's event is returned and nothing is posted again.
    """
    body = _text(body, "The reply")
    current = _locked(ticket)
    last = current.events.filter(kind=TicketEvent.Kind.REPLY).order_by("-created_at", "-id").first()
    if (
        last is not None
        and last.body == body
        and timezone.now() - last.created_at < REPLY_REPEAT_WINDOW
    ):
        _refresh(ticket, current)
        return last
    data: dict[str, Any] = {}
    conversation = (
        Conversation.objects.filter(pk=current.conversation_id).first()
        if current.conversation_id
        else None
    )
    if conversation is not None:
        data["message_id"] = agent_message_add(
            conversation=conversation, text=body, author_name=_shown_name(by)
        ).pk
    event = _event(current, TicketEvent.Kind.REPLY, author=by, body=body, data=data)
    changed = ["updated_at"]
    if current.first_response_at is None:
        current.first_response_at = event.created_at
        changed.append("first_response_at")
    changed += _status_change(current, Ticket.Status.WAITING, by)
    current.save(update_fields=changed)
    _refresh(ticket, current)
    return event


@transaction.atomic
def ticket_note_add(*, ticket: Ticket, body: str, by: AbstractBaseUser | None) -> TicketEvent:
    """An internal note: on the ticket's timeline for the staff, never shown to the asker."""
    body = _text(body, "The note")
    current = _locked(ticket)
    event = _event(current, TicketEvent.Kind.NOTE, author=by, body=body)
    current.save(update_fields=["updated_at"])
    _refresh(ticket, current)
    return event
