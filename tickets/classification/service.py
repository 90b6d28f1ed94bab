"""classify(): a ticket's category, urgency and sentiment, cached, through the gateway,
with the local classifier as the offline default and the last resort."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.db import IntegrityError

from kb.embeddings.usage import embedding_context
from kb.models import Account
from llm.gateway import LlmGateway
from llm.ledger import CallContext, llm_call_record
from llm.privacy import DataPolicy
from llm.providers.registry import configured_providers
from llm.routing import Route, route_named
from tickets.classification.cache import (
    classification_cache_get,
    classification_cache_key,
    classification_cache_put,
)
from tickets.classification.llm import FEATURE, classification_route, llm_classify
from tickets.classification.local import MODEL_NAME, local_classify
from tickets.classification.outcome import LOCAL_CLASSIFIER, Classification
from tickets.models import DEFAULT_CATEGORIES, TicketSettings

logger = logging.getLogger(__name__)


def account_categories(account: Account) -> list[str]:
    """The account's categories (its TicketSettings row, created with the defaults on
    first use); a malformed list reads as the defaults rather than failing a ticket."""
    try:
        row, _ = TicketSettings.objects.get_or_create(account=account)
    except IntegrityError:  # created meanwhile by a concurrent ticket
        row = TicketSettings.objects.get(account=account)
    categories: list[str] = []
    for value in row.categories if isinstance(row.categories, list) else []:
        name = str(value).strip()
        if name and name not in categories:
            categories.append(name)
    return categories or list(DEFAULT_CATEGORIES)


def _configured_route() -> Route:
    """CAIRN_TICKET_CLASSIFY_ROUTE; a name that is no route means no model (logged)."""
    name = settings.CAIRN_TICKET_CLASSIFY_ROUTE
    try:
        return route_named(name)
    except KeyError:
        logger.warning("CAIRN_TICKET_CLASSIFY_ROUTE=%s is no route: local classifier", name)
        return Route(name, (), max_tokens=0, temperature=0.0)


def classify(
    *, account: Account, text: str, request_id: str = "", gateway: LlmGateway | None = None
) -> Classification:
    """Classify a ticket's text for ``account``.

    Served from the account's cache for identical text and categories (no call, no ledger
    row). Otherwise the CAIRN_TICKET_CLASSIFY_ROUTE route's language models, held to the
    JSON schema with one correction; the local classifier when the route has none, or as
    the fallback when they fail or break the contract twice (a ledger row says so:
    provider "local", fallback_used, error_class the reason). Never raises for a
    provider's problem. Fallback results are not cached, so the next identical text
    tries the model again. ``gateway``: tests may pass their own.
    """
    request_id = request_id or uuid.uuid4().hex
    categories = account_categories(account)
    key = classification_cache_key(text, categories)
    cached = classification_cache_get(account=account, key=key)
    if cached is not None:
        return cached

    gateway = gateway or LlmGateway(providers=configured_providers())
    policy = DataPolicy(redact_pii=account.redact_pii, local_only=account.local_providers_only)
    route = classification_route(_configured_route(), gateway.providers, policy)
    outcome = llm_classify(
        gateway=gateway, route=route, text=text, categories=categories,
        account_id=account.pk, request_id=request_id, policy=policy,
    )  # fmt: skip
    if outcome.value is not None:
        result = Classification(
            category=str(outcome.value["category"]),
            urgency=str(outcome.value["urgency"]),
            sentiment=str(outcome.value["sentiment"]),
            confidence=round(float(outcome.value["confidence"]), 4),
            classified_by=f"{outcome.provider}/{outcome.model}",
        )
        classification_cache_put(account=account, key=key, result=result)
        return result

    fallback = outcome.failure != "no_model"
    if fallback:
        logger.warning(
            "ticket classification fell back to the local classifier (%s)", outcome.failure,
            extra={"request_id": request_id, "account_id": account.pk},
        )  # fmt: skip
    result = _local(
        account=account, text=text, categories=categories, request_id=request_id,
        route=route.name, fallback_reason=outcome.failure if fallback else "",
    )  # fmt: skip
    if not fallback:
        classification_cache_put(account=account, key=key, result=result)
    return result


def _local(
    *,
    account: Account,
    text: str,
    categories: Sequence[str],
    request_id: str,
    route: str,
    fallback_reason: str,
) -> Classification:
    """The local classifier, with its ledger row (cost: nothing but its embedding, which
    the embedding ledger records under "embedding:ticket_classify")."""
    started = time.monotonic()
    with embedding_context(account_id=account.pk, feature=FEATURE, request_id=request_id):
        prediction = local_classify(text, categories)
    llm_call_record(
        context=CallContext(
            request_id=request_id, account_id=account.pk, user_id=None, route=route,
            feature=FEATURE,
        ),
        provider=LOCAL_CLASSIFIER, model=MODEL_NAME, attempt=1, status="ok",
        latency_ms=(time.monotonic() - started) * 1000,
        error_class=fallback_reason, fallback_used=bool(fallback_reason),
    )  # fmt: skip
    return Classification(
        category=prediction.category,
        urgency=prediction.urgency,
        sentiment=prediction.sentiment,
        confidence=prediction.confidence,
        classified_by=LOCAL_CLASSIFIER,
    )
