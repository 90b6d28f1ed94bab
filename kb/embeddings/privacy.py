"""What an account allows to leave the building when text is embedded.

The same two rules as the LLM gateway's (``llm/privacy.py``), applied to
embedding calls:

- ``local_providers_only``: the account's knowledge bases may only use an embedding
  model that runs here (the bundled MiniLM). Choosing an API model is refused where
  it is chosen (``embedding_model_check``: the admin form, knowledge base creation,
  the start of a re-embedding), and the API embedder refuses again at call time
  (``embedding_policy_enforce``), so a knowledge base that got an API model some
  other way (the account's flag turned on later, a direct database edit) still sends
  nothing out.
- ``redact_pii``: text sent to an API embedding model has its e-mail addresses,
  phone, card and account numbers, SSNs and IP addresses replaced by placeholders
  (``[EMAIL_1]``) first, each text on its own. Chunks and questions go through the
  same redaction, so they stay comparable; nothing is restored, as vectors carry no
  text back. The local model sees text as it is: nothing leaves the process.

Who is being served comes from ``kb.embeddings.usage.embedding_context``; with no
account in it (set-up code, offline evaluation) no account rule applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kb.embeddings.base import EmbeddingError
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.usage import current_embedding_context
from kb.guard.pii import pii_redact
from kb.models import Account


class EmbeddingModelRefused(ValueError):
    """The account may not use this embedding model; the message says why."""


@dataclass(frozen=True)
class EmbeddingPolicy:
    redact_pii: bool = False
    local_only: bool = False


def embedding_model_is_local(model_id: str) -> bool:
    """Runs in this process: text embedded with it goes nowhere."""
    return model_id == MINILM_MODEL_ID


def embedding_model_check(*, account: object, model_id: str) -> None:
    """Raise EmbeddingModelRefused if ``account`` may not embed with ``model_id``."""
    if getattr(account, "local_providers_only", False) and not embedding_model_is_local(model_id):
        raise EmbeddingModelRefused(
            f"{model_id} is a third-party embedding API and this account allows local "
            f"providers only; use {MINILM_MODEL_ID}."
        )


def embedding_policy(account_id: int | None) -> EmbeddingPolicy:
    """The rules of ``account_id`` (read from the database each time: an administrator's
    change applies to the next call)."""
    if account_id is None:
        return EmbeddingPolicy()

    row = (
        Account.objects.filter(pk=account_id)
        .values_list("redact_pii", "local_providers_only")
        .first()
    )
    if row is None:
        return EmbeddingPolicy()
    return EmbeddingPolicy(redact_pii=row[0], local_only=row[1])


def embedding_policy_enforce(model_id: str, texts: Sequence[str]) -> list[str]:
    """What a third-party embedding API may receive of ``texts`` for the account being
    served: refused outright (EmbeddingError, permanent) for a local-only account,
    PII-redacted when the account asks for it, as they are otherwise."""
    context = current_embedding_context()
    policy = embedding_policy(context.account_id)
    if policy.local_only:
        raise EmbeddingError(
            f"account {context.account_id} allows local providers only; "
            f"{model_id} is a third-party embedding API",
            transient=False,
        )
    if policy.redact_pii:
        return [pii_redact(text).text for text in texts]
    return list(texts)
