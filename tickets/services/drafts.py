"""Cairn's drafted reply to a ticket: a grounded, cited answer addressed to the asker.

The draft goes through the same answer pipeline as the chat (``answer_compose``), the way
evaluation calls it: the ticket's question on its own (no history: the asker's earlier
turns were answered already), no answer cache (a draft is written once and read by a
person), nothing persisted but the usage ledger, whose rows say ``feature="ticket_draft"``.
With the default local extractive answerer the draft is the documents' own sentences with
their ``[n]`` markers; with a language model it is that model's checked answer.

Sentences the citation check could not support are left out of the draft: the agent sends
what the documents back, and adds the rest in their own words. When the answer abstains,
the draft is only the greeting and the sign-off, with no sources: the agent writes the
reply (the ticket page says the knowledge base had nothing to draft from).

Not charged to the account's budget windows (like evaluation): the draft is the support
team's cost, not the asker's; the ledger still records what it cost.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import transaction

from chat.answering.citations import CheckedSentence
from chat.answering.extractive import ExtractiveAnswerer
from chat.answering.pipeline import AnswerOutcome, AnswerRequest, SourceRef, answer_compose
from config.dispatch import enqueue_on_commit
from kb.models import KnowledgeBase
from llm.gateway import LlmGateway
from llm.providers.registry import configured_providers
from tickets.models import Ticket

logger = logging.getLogger(__name__)

DRAFT_TASK = "tickets.tasks.ticket_draft_task"
DRAFT_FEATURE = "ticket_draft"
PENDING, READY, FAILED = "pending", "ready", "failed"
EXCERPT_CHARS = 300
_UNSUPPORTED_MARK = re.compile(r"[ \t]*\[\?\]")
_SPACES = re.compile(r"[ \t]{2,}")


def draft_request(ticket: Ticket) -> None:
    """Mark the ticket's draft as pending and queue its writing once the transaction
    commits (``tickets.tasks.ticket_draft_task``)."""
    ticket.draft_status = PENDING
    # updated_at too: the inbox's live stream shows the change.
    ticket.save(update_fields=["draft_status", "updated_at"])
    enqueue_on_commit(DRAFT_TASK, ticket.pk)


def draft_make(ticket: Ticket) -> Ticket:
    """Write Cairn's draft reply to ``ticket`` (draft_reply, draft_citations) and mark it
    ready, or failed when no answer could be made (no knowledge base, the providers
    down, an error); returns the ticket as saved."""
    knowledge_base = _knowledge_base(ticket)
    if knowledge_base is None:
        logger.info("ticket %s: no knowledge base to draft a reply from", ticket.pk)
        return _save(ticket, reply="", citations=[], status=FAILED)
    outcome = AnswerOutcome()
    request = AnswerRequest(
        account=ticket.account, knowledge_base=knowledge_base, question=ticket.question,
        use_cache=False, feature=DRAFT_FEATURE,
    )  # fmt: skip
    try:
        for _ in answer_compose(request, outcome, gateway=_gateway()):
            pass
    except Exception:  # the ticket must not wait on a draft that will never come
        logger.exception("ticket %s: the draft reply failed", ticket.pk)
        return _save(ticket, reply="", citations=[], status=FAILED)
    if outcome.status == "done":
        body = _supported_text(outcome.text, outcome.sentences)
        citations = [_citation(ref) for ref in outcome.cited]
        return _save(ticket, reply=_letter(ticket, body, citations), citations=citations,
                     status=READY)  # fmt: skip
    if outcome.status == "abstained":
        return _save(ticket, reply=_letter(ticket, "", []), citations=[], status=READY)
    logger.info("ticket %s: no draft (%s %s)", ticket.pk, outcome.status, outcome.problem)
    return _save(ticket, reply="", citations=[], status=FAILED)


def draft_abstained(ticket: Ticket) -> bool:
    """Whether a ready draft has nothing from the knowledge base (the agent writes it)."""
    return ticket.draft_status == READY and not ticket.draft_citations


def _knowledge_base(ticket: Ticket) -> KnowledgeBase | None:
    """The conversation's knowledge base; for a ticket without one (the REST API), the
    account's only knowledge base, if it has exactly one."""
    if ticket.conversation_id is not None and ticket.conversation is not None:
        return ticket.conversation.knowledge_base
    candidates = list(KnowledgeBase.objects.filter(account_id=ticket.account_id)[:2])
    return candidates[0] if len(candidates) == 1 else None


def _gateway() -> LlmGateway:
    # The extractive answerer paces its words for a reader; a draft has none waiting.
    return LlmGateway(
        providers={**configured_providers(), "local": ExtractiveAnswerer(token_delay=0.0)}
    )


def _supported_text(text: str, sentences: tuple[CheckedSentence, ...]) -> str:
    """``text`` without the sentences the citation check marked ``[?]``."""
    for sentence in sorted(sentences, key=lambda s: s.start, reverse=True):
        if not sentence.marked:
            continue
        tail = _UNSUPPORTED_MARK.match(text, sentence.end)
        end = tail.end() if tail else sentence.end
        text = text[: sentence.start] + text[end:]
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _citation(ref: SourceRef) -> dict[str, Any]:
    chunk = ref.chunk
    return {
        "number": ref.number,
        "chunk_id": chunk.pk,
        "document_id": chunk.document_id,
        "title": chunk.document.title,
        "heading_path": chunk.heading_path,
        "excerpt": chunk.text[:EXCERPT_CHARS],
        "support_score": ref.support_score,
    }


def _letter(ticket: Ticket, body: str, citations: list[dict[str, Any]]) -> str:
    """The reply as the asker reads it: a greeting, the answer, its sources in words (the
    asker may not open the documents), a sign-off the agent can change."""
    asker = ticket.asker
    name = (asker.get_short_name() or asker.get_username()) if asker is not None else ""
    parts = [f"Hello {name}," if name else "Hello,"]
    if body:
        parts.append(body)
    if citations:
        parts.append(
            "Sources:\n"
            + "\n".join(
                f"[{c['number']}] "
                + " › ".join(part for part in (c["title"], c["heading_path"]) if part)
                for c in citations
            )
        )
    parts.append(f"Best regards,\n{ticket.account.name} support")
    return "\n\n".join(parts)


@transaction.atomic
def _save(ticket: Ticket, *, reply: str, citations: list[dict[str, Any]], status: str) -> Ticket:
    ticket.draft_reply, ticket.draft_citations, ticket.draft_status = reply, citations, status
    ticket.save(update_fields=["draft_reply", "draft_citations", "draft_status", "updated_at"])
    return ticket
