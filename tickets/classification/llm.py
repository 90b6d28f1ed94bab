"""Classification by a language model through the gateway, held to the output contract.

One call; if the reply is not JSON matching the schema, one correction call (the ticket,
the reply and what was wrong with it); if that is still wrong, or any call fails (the
gateway's retries, fallbacks and breakers are spent), the caller falls back to the local
classifier. The gateway writes a ledger row per call: feature "ticket_classify" for the
first, "ticket_classify_correction" for the correction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from llm.events import CompletionRequest
from llm.gateway import STATIC_PROVIDER, GatewayRequest, GatewayResult, LlmGateway
from llm.privacy import DataPolicy, provider_is_local
from llm.providers.base import Provider
from llm.routing import Route
from tickets.classification.prompts import correction_messages, system_prompt, ticket_message
from tickets.classification.schema import reply_check

FEATURE = "ticket_classify"
CORRECTION_FEATURE = "ticket_classify_correction"
# The extractive answerer quotes documents; it cannot follow a schema, so it is no
# classifier: chains are read without it (and the local classifier takes its place).
EXTRACTIVE_PROVIDER = "local"
MAX_REPLY_TOKENS = 200


@dataclass(frozen=True)
class LlmOutcome:
    value: dict[str, Any] | None  # the valid reply
    provider: str = ""
    model: str = ""
    # Why there is no value: "no_model" (the chain has no language model), "provider_failed",
    # "invalid_output" (after the correction).
    failure: str = ""


def classification_route(
    route: Route, providers: Mapping[str, Provider], policy: DataPolicy
) -> Route:
    """``route`` without the entries that cannot classify here: the extractive answerer,
    providers not configured, third parties for a local-only account."""
    chain = tuple(
        entry
        for entry in route.chain
        if entry.provider != EXTRACTIVE_PROVIDER
        and entry.provider in providers
        and (not policy.local_only or provider_is_local(providers[entry.provider]))
    )
    return replace(route, chain=chain, max_tokens=min(route.max_tokens, MAX_REPLY_TOKENS),
                   temperature=0.0)  # fmt: skip


def _call(gateway: LlmGateway, request: GatewayRequest) -> GatewayResult | None:
    result = GatewayResult()
    for _event in gateway.stream(request, result):
        pass
    if result.failed or result.provider == STATIC_PROVIDER:
        return None
    return result


def llm_classify(
    *,
    gateway: LlmGateway,
    route: Route,
    text: str,
    categories: Sequence[str],
    account_id: int,
    request_id: str,
    policy: DataPolicy,
) -> LlmOutcome:
    """Ask ``route``'s chain (already read by classification_route) for the JSON."""
    if not route.chain:
        return LlmOutcome(None, failure="no_model")
    system = system_prompt(categories)

    def request(messages: tuple, feature: str) -> GatewayRequest:
        return GatewayRequest(
            completion=CompletionRequest(
                system=system, messages=messages, max_tokens=route.max_tokens,
                temperature=route.temperature,
            ),
            route=route, account_id=account_id, feature=feature, request_id=request_id,
            policy=policy,
        )  # fmt: skip

    first = _call(gateway, request((ticket_message(text),), FEATURE))
    if first is None:
        return LlmOutcome(None, failure="provider_failed")
    check = reply_check(first.text, categories)
    if check.value is not None:
        return LlmOutcome(check.value, first.provider, first.model)
    corrected = _call(
        gateway, request(correction_messages(text, first.text, check.error), CORRECTION_FEATURE)
    )
    if corrected is None:
        return LlmOutcome(None, first.provider, first.model, failure="provider_failed")
    check = reply_check(corrected.text, categories)
    if check.value is not None:
        return LlmOutcome(check.value, corrected.provider, corrected.model)
    return LlmOutcome(None, corrected.provider, corrected.model, failure="invalid_output")
