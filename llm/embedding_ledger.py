"""Embedding calls in the usage ledger (registered as kb.embeddings' usage recorder)."""

from __future__ import annotations

import uuid

from kb.embeddings.openai_api import OPENAI_PREFIX
from kb.embeddings.usage import EmbeddingContext, EmbeddingUsage
from llm.events import Usage
from llm.ledger import CallContext, llm_call_record


def record_embedding_call(usage: EmbeddingUsage, context: EmbeddingContext) -> None:
    if usage.model_id.startswith(OPENAI_PREFIX):
        provider, model = "openai", usage.model_id.removeprefix(OPENAI_PREFIX)
    else:
        provider, model = "local", usage.model_id
    llm_call_record(
        context=CallContext(
            request_id=context.request_id or uuid.uuid4().hex,
            account_id=context.account_id,
            user_id=None,
            route="",
            feature=f"embedding:{context.feature}",
        ),
        provider=provider,
        model=model,
        attempt=1,
        status="ok" if usage.ok else "error",
        usage=Usage(usage.input_tokens, 0, estimated=usage.estimated),
        latency_ms=usage.latency_ms,
        error_class=usage.error_class,
    )
