"""answer_stream: run the pipeline for a pending answer and persist what it produced.

An answer is claimed with a conditional update (pending → streaming), so however
many streams a browser opens for it, and on whichever web process, exactly one
generates it; the others wait for it to finish and then show the result. The SSE
views claim with answer_claim and wait on their event loop (chat.streaming), so an
extra reader holds no generation thread; answer_stream is the blocking form.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from chat.answering.citations import CheckedSentence
from chat.answering.context import Turn, history_select
from chat.answering.pipeline import (
    AnswerOutcome,
    AnswerRequest,
    SourceRef,
    answer_compose,
    answer_text_safe,
)
from chat.models import BudgetReservation, Citation, Message
from chat.selectors.budgets import budget_standing
from chat.services.budgets import BudgetExhausted, budget_reserve, budget_settle
from chat.services.cost_alerts import cost_alert_enqueue
from chat.services.recovery import answer_heartbeat, answer_heartbeat_seconds, answer_spent
from chat.signals import answer_finished
from flags.selectors import flags_for, subject_for
from kb.embeddings.tokens import count_tokens
from kb.models import Chunk
from llm.events import Usage
from llm.ledger import price_for
from llm.pricing import call_cost
from llm.routing import SIMPLE, classify_question, route_named
from observability.logging import REQUEST_ID_MAX_LENGTH, request_id_get

logger = logging.getLogger(__name__)

STOP_CHECK_SECONDS = 0.2
# System prompt, delimiters, the summary's heading: tokens beyond the passages and the history.
PROMPT_OVERHEAD = 400
WAIT_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Finished:
    """The answer reached a final state (see the message row)."""

    message_id: int


StreamEvent = Token | Finished


def _stop_key(message_id: int) -> str:
    return f"cairn:answer:stop:{message_id}"


def answer_stop(*, message: Message) -> None:
    """Ask the process generating ``message`` to stop (works across web processes
    through the shared cache); an answer that has not started is stopped at once."""
    cache.set(_stop_key(message.pk), True, timeout=600)
    Message.objects.filter(pk=message.pk, status=Message.Status.PENDING).update(
        status=Message.Status.STOPPED, completed_at=timezone.now()
    )


@transaction.atomic
def answer_regenerate(*, message: Message) -> Message:
    """Replace a finished answer with a new pending one for the same question."""
    if message.role != Message.Role.ASSISTANT or not message.is_final or message.superseded:
        raise ValueError("only a finished, current answer can be regenerated")
    if message.purged_at is not None:  # its question's text is gone
        raise ValueError("an answer removed under the retention policy cannot be regenerated")
    Message.objects.filter(pk=message.pk).update(superseded=True)
    return Message.objects.create(
        conversation_id=message.conversation_id,
        role=Message.Role.ASSISTANT,
        question_id=message.question_id,
        status=Message.Status.PENDING,
    )


def _history(message: Message) -> tuple[Turn, ...]:
    """The finished turns before this answer's question, oldest first: the newest of them
    only, as many as the prompt could hold (context.history_select takes what fits)."""
    if message.question is None:
        return ()
    most = settings.CAIRN_HISTORY_TURNS + settings.CAIRN_HISTORY_SUMMARY_TURNS
    answers = (
        Message.objects.filter(
            conversation_id=message.conversation_id,
            role=Message.Role.ASSISTANT,
            superseded=False,
            status=Message.Status.DONE,
            question__created_at__lt=message.question.created_at,
            # Turns the retention policy emptied would only be blank lines in the prompt.
            purged_at__isnull=True,
            question__purged_at__isnull=True,
        )
        .select_related("question")
        .order_by("-question__created_at")[:most]
    )
    return tuple(Turn(a.question.content, a.content) for a in list(answers)[::-1] if a.question)


def answer_wait_seconds() -> float:
    """How long a second reader waits for the stream generating the answer."""
    return float(settings.CAIRN_LLM_REQUEST_TIMEOUT + 60)


def _wait_for(message_id: int, cancelled: Callable[[], bool]) -> None:
    """Another stream is generating this answer: wait until it is final."""
    deadline = time.monotonic() + answer_wait_seconds()
    while time.monotonic() < deadline and not cancelled():
        if answers_final_among(message_ids=frozenset([message_id])):
            return
        time.sleep(WAIT_POLL_SECONDS)


def answers_final_among(*, message_ids: frozenset[int]) -> set[int]:
    """Those of ``message_ids`` that are final (or gone): one query for all the readers
    of a process that wait on answers other streams are generating."""
    unfinished = Message.objects.filter(
        pk__in=message_ids, status__in=Message.UNFINISHED_STATUSES
    ).values_list("pk", flat=True)
    return set(message_ids) - set(unfinished)


def answer_claim(*, message_id: int) -> bool:
    """Claim the pending answer for this stream (pending → streaming, stamped); False when
    another stream, here or on another server, has it already, or it is final."""
    return bool(
        Message.objects.filter(
            pk=message_id, role=Message.Role.ASSISTANT, status=Message.Status.PENDING
        ).update(status=Message.Status.STREAMING, progress_at=Now())
    )


def answer_stream(
    *,
    message_id: int,
    cancelled: Callable[[], bool],
    history: tuple[Turn, ...] | None = None,
) -> Iterator[StreamEvent]:
    """Generate the pending answer ``message_id``, yielding its text as it comes.

    ``cancelled`` is polled between tokens (a client that went away); a stop asked
    for through answer_stop is noticed the same way. Either ends generation and
    keeps the partial answer, marked stopped. Always ends with Finished.
    ``history`` replaces the conversation's own earlier turns (the OpenAI-compatible
    endpoint, whose clients send the whole conversation with every call).
    An answer another stream has claimed is waited for here, blocking.
    """
    if not answer_claim(message_id=message_id):
        _wait_for(message_id, cancelled)
        yield Finished(message_id)
        return
    yield from answer_generate(message_id=message_id, cancelled=cancelled, history=history)


def answer_generate(
    *,
    message_id: int,
    cancelled: Callable[[], bool],
    history: tuple[Turn, ...] | None = None,
) -> Iterator[StreamEvent]:
    """answer_stream for an answer this stream has claimed (answer_claim)."""
    with answer_heartbeat.writing(message_id):  # stamps it while this process lives
        yield from _answer_generate(message_id, cancelled, history)


def _answer_generate(
    message_id: int, cancelled: Callable[[], bool], history: tuple[Turn, ...] | None
) -> Iterator[StreamEvent]:
    """answer_stream, once it has claimed the answer."""
    message = Message.objects.select_related(
        "question", "conversation__account", "conversation__knowledge_base"
    ).get(pk=message_id)
    conversation = message.conversation
    if message.question is None:  # an answer is always created with its question
        raise ValueError(f"answer {message_id} has no question")
    question = message.question.content
    request_id = _answer_request_id()
    # Written before the hold is taken: the reaper finds a dead process's hold by it.
    Message.objects.filter(pk=message_id).update(request_id=request_id)
    route = classify_question(question)
    turns = _history(message) if history is None else history
    # The asker's feature-flag variants (a user in the browser, the API key over the API).
    flags = flags_for(
        account_id=conversation.account_id,
        subject=subject_for(user_id=conversation.user_id, api_key_id=conversation.api_key_id),
    )
    try:
        hold = budget_reserve(
            account_id=conversation.account_id, user_id=conversation.user_id,
            request_id=request_id, **answer_estimate(question, route, history=turns),
        )  # fmt: skip
    except BudgetExhausted as exc:
        refused = AnswerOutcome(
            status="failed", problem=Message.Problem.BUDGET_EXHAUSTED, text=str(exc),
            request_id=request_id, retry_at=exc.resets_at, flags=flags,
        )  # fmt: skip
        answer_persist(message=message, outcome=refused)
        yield Finished(message_id)
        return
    request = AnswerRequest(
        account=conversation.account,
        knowledge_base=conversation.knowledge_base,
        question=question,
        history=turns,
        user_id=conversation.user_id,
        request_id=request_id,
        # Past a soft threshold, answers take the cheaper route.
        route=SIMPLE if hold.soft_exceeded else route,
        use_cache=not Message.objects.filter(
            question_id=message.question_id, superseded=True
        ).exists(),
        flags=flags,
    )
    outcome = AnswerOutcome()
    stop_requested = _stop_poller(message_id, cancelled)
    still_ours = _progress_stamper(message_id)
    compose = answer_compose(request, outcome)
    try:
        for text in compose:
            yield Token(text)
            if stop_requested() or not still_ours():
                compose.close()  # stops the provider call; outcome becomes "stopped"
                break
    except Exception:
        logger.exception("answer %s failed", message_id)
        outcome.status, outcome.problem = "failed", Message.Problem.INTERNAL
        # Unchecked, so no URL is vouched for; and no markup, as everywhere.
        outcome.text = answer_text_safe(outcome.raw_text, frozenset())
        outcome.sentences = ()
    finally:
        compose.close()
        if not answer_persist(message=message, outcome=outcome):
            # The reaper failed it while this process was silent (or the retention purge
            # emptied it): that verdict stands, and the hold is settled from the ledger.
            spent = answer_spent(request_id=request_id)
            message.input_tokens, message.output_tokens, message.cost = spent
        # What the ledger says it cost (zero for a cached or failed answer) replaces the hold.
        budget_settle(
            request_id=request_id,
            tokens=message.input_tokens + message.output_tokens,
            cost=message.cost,
        )
        cost_alert_enqueue(account=conversation.account, cost=message.cost)
    yield Finished(message_id)


def _answer_request_id() -> str:
    """The id of the answer's ledger rows and budget hold: the id of the web request (or
    task) generating it, so its log lines, gateway lines and ledger rows share one id.

    A client may send the same X-Request-ID twice, and an answer's cost is the sum of the
    ledger rows with its id: an id an answer already has gets a suffix (still found by
    searching for the client's id). The cache claims it first, for two requests at once.
    """
    bound = request_id_get()
    if bound is None:
        return uuid.uuid4().hex
    fresh = cache.add(f"cairn:answer-request-id:{bound}", True, timeout=24 * 3600)
    if fresh and not BudgetReservation.objects.filter(request_id=bound).exists():
        return bound
    return f"{bound[: REQUEST_ID_MAX_LENGTH - 9]}-{uuid.uuid4().hex[:8]}"


def answer_budget_check(
    *, account_id: int, user_id: int | None, question: str
) -> BudgetExhausted | None:
    """Whether the budgets left can hold another answer, checked before asking (so the
    page can answer 429 at once); the reservation when it is generated stays the rule."""
    standing = budget_standing(account_id=account_id, user_id=user_id)
    if standing is None:
        return None
    needed = answer_estimate(question, classify_question(question))
    short = (standing.tokens_left is not None and standing.tokens_left < needed["tokens"]) or (
        standing.cost_left is not None and standing.cost_left < needed["cost"]
    )
    if not short:
        return None
    local = standing.resets_at.astimezone(ZoneInfo(settings.CAIRN_BUDGET_TIMEZONE))
    return BudgetExhausted(
        "The answer budget does not cover another question until "
        f"{local:%Y-%m-%d %H:%M} {settings.CAIRN_BUDGET_TIMEZONE}; an account admin can raise it.",
        resets_at=standing.resets_at,
    )


def answer_estimate(
    question: str, route_name: str, *, history: Sequence[Turn] = ()
) -> dict[str, Any]:
    """The most an answer on ``route_name`` can cost: a full context, the part of
    ``history`` that goes into the prompt (at most CAIRN_HISTORY_MAX_TOKENS) and a full
    answer, at the price of the dearest entry of the route's chain (held until settled)."""
    route = route_named(route_name)
    prompt_tokens = (
        count_tokens(question) + settings.CAIRN_CONTEXT_MAX_TOKENS + PROMPT_OVERHEAD
        + history_select(history).tokens
    )  # fmt: skip
    usage = Usage(prompt_tokens, route.max_tokens)
    cost = max(
        (call_cost(usage, price_for(e.provider, e.model)) for e in route.chain), default=Decimal(0)
    )
    return {"tokens": prompt_tokens + route.max_tokens, "cost": cost}


def _progress_stamper(message_id: int) -> Callable[[], bool]:
    """Stamps the answer's ``progress_at`` (at most every answer_heartbeat_seconds()), the
    sign of life that keeps the reaper away; False once the answer is no longer being
    written here (the reaper failed it while this process was silent: stop generating)."""
    last_stamp = time.monotonic()  # the claim stamped it

    def still_ours() -> bool:
        nonlocal last_stamp
        now = time.monotonic()
        if now - last_stamp < answer_heartbeat_seconds():
            return True
        last_stamp = now
        return bool(
            Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
                progress_at=Now()
            )
        )

    return still_ours


def _stop_poller(message_id: int, cancelled: Callable[[], bool]) -> Callable[[], bool]:
    last_check = 0.0

    def stop_requested() -> bool:
        nonlocal last_check
        if cancelled():
            return True
        now = time.monotonic()
        if now - last_check < STOP_CHECK_SECONDS:
            return False
        last_check = now
        return bool(cache.get(_stop_key(message_id)))

    return stop_requested


def _citation(message: Message, ref: SourceRef, kind: str, live: set[int]) -> Citation:
    chunk = ref.chunk
    return Citation(
        message=message,
        kind=kind,
        number=ref.number,
        chunk_id=chunk.pk if chunk.pk in live else None,
        document_id=chunk.document_id,
        document_title=chunk.document.title,
        heading_path=chunk.heading_path,
        excerpt=chunk.text,
        support_score=ref.support_score,
    )


@transaction.atomic
def answer_persist(*, message: Message, outcome: AnswerOutcome) -> bool:
    """Write the answer, its sentences as checked, its citations and what it cost (the sum
    of its ledger rows).

    Only over an unfinished answer: one already final (the reaper failed it while this
    process was silent, or the retention purge emptied it) is left as it is, and False
    returned. The row lock keeps the reaper from failing it halfway through.
    """
    status = (
        Message.objects.select_for_update()
        .filter(pk=message.pk)
        .values_list("status", flat=True)
        .first()
    )
    if status not in Message.UNFINISHED_STATUSES:
        logger.warning("answer %s is already %s: this outcome is dropped", message.pk, status)
        cache.delete(_stop_key(message.pk))
        return False
    spent = answer_spent(request_id=outcome.request_id)
    message.status = outcome.status
    message.problem = outcome.problem
    message.content = outcome.text
    message.raw_content = outcome.raw_text
    # Per sentence of ``content``: its text, the citations that stood, whether it is
    # supported, and its span (so the chat can mark it); empty when it was not checked.
    message.sentences = [sentence.as_data() for sentence in outcome.sentences]
    message.prompt_version = outcome.prompt_version
    message.flags = outcome.flags
    message.route, message.provider, message.model = outcome.route, outcome.provider, outcome.model
    message.cached = outcome.cached
    message.request_id = outcome.request_id
    message.input_tokens, message.output_tokens, message.cost = spent
    ttft = outcome.time_to_first_token_ms
    message.time_to_first_token_ms = None if ttft is None else round(ttft)
    message.latency_ms = round(outcome.latency_ms)
    message.completed_at = timezone.now()
    message.retry_at = outcome.retry_at
    message.save()
    # A document re-ingested meanwhile has new chunks: a citation keeps its copy of
    # the passage and loses only the link to a chunk that no longer exists.
    refs = [(ref, Citation.Kind.CITED) for ref in outcome.cited] + [
        (ref, Citation.Kind.CLOSEST) for ref in outcome.closest
    ]
    live = set(
        Chunk.objects.filter(pk__in=[ref.chunk.pk for ref, _ in refs]).values_list("pk", flat=True)
    )
    Citation.objects.bulk_create([_citation(message, ref, kind, live) for ref, kind in refs])
    cache.delete(_stop_key(message.pk))
    # Inside this transaction: the apps above (tickets) may open a ticket for the answer.
    answer_finished.send(
        Message, message=message, supported_share=supported_share(outcome.sentences)
    )
    return True


def supported_share(sentences: Sequence[CheckedSentence]) -> float | None:
    """Supported sentences / sentences that state something, of an answer as persisted
    (None when none was checked: an abstention, a failure)."""
    counted = [sentence for sentence in sentences if sentence.counted]
    return sum(s.supported for s in counted) / len(counted) if counted else None
