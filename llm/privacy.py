"""What an account allows to leave the building: PII redaction and local-only answering.

The gateway is the one place text leaves for a provider, so this is applied there,
per chain entry: a *local* provider (the extractive answerer, or an
OpenAI-compatible server the operator declared local with
CAIRN_OPENAI_COMPATIBLE_LOCAL) sees the prompt as it is; a third-party provider
sees it with e-mail addresses, phone, card and account numbers, SSNs and IP
addresses replaced by placeholders (``[EMAIL_1]``), one mapping for the system
prompt, the history, the passages and the question. The placeholders the model
echoes are restored in the text streamed back, so the asker reads the real values
while the provider never received them. A placeholder split across two stream
chunks (``[EMA`` + ``IL_1]``) is held back until it is whole.

An account without consent to third-party providers (``local_providers_only``)
never reaches one: their chain entries are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from kb.guard.pii import PLACEHOLDER_RE, pii_redact, pii_restore
from llm.events import CompletionRequest, ContextPassage, Message

# The longest placeholder prefix worth waiting for: "[EMAIL_" plus a few digits.
_PARTIAL_PLACEHOLDER = re.compile(r"\[[A-Z]{0,5}(?:_\d{0,4})?$")


@dataclass(frozen=True)
class DataPolicy:
    """An account's rules for its text, as the gateway applies them."""

    redact_pii: bool = False
    local_only: bool = False


def provider_is_local(provider: object) -> bool:
    """Providers are third parties unless they say otherwise (``local = True``)."""
    return bool(getattr(provider, "local", False))


def completion_redact(completion: CompletionRequest) -> tuple[CompletionRequest, dict[str, str]]:
    """The request with PII replaced by placeholders, and placeholder -> original value."""
    mapping: dict[str, str] = {}

    def redact(text: str) -> str:
        return pii_redact(text, mapping=mapping).text if text else text

    redacted = replace(
        completion,
        system=redact(completion.system),
        messages=tuple(Message(m.role, redact(m.content)) for m in completion.messages),
        question=redact(completion.question),
        passages=tuple(
            ContextPassage(
                p.number, redact(p.text), redact(p.title), redact(p.heading_path), p.embedding_model
            )
            for p in completion.passages
        ),  # fmt: skip
    )
    return redacted, mapping


class PlaceholderRestorer:
    """Turns a provider's streamed text back into the asker's: placeholders restored,
    and a placeholder cut by a chunk boundary held back until it is complete."""

    def __init__(self, placeholders: dict[str, str]) -> None:
        self.placeholders = placeholders
        self._held = ""

    def feed(self, text: str) -> str:
        pending = self._held + text
        partial = _PARTIAL_PLACEHOLDER.search(pending)
        if partial is not None:
            self._held, pending = pending[partial.start() :], pending[: partial.start()]
        else:
            self._held = ""
        return pii_restore(pending, self.placeholders)

    def flush(self) -> str:
        """Whatever is still held (the stream ended inside something that only looked
        like a placeholder)."""
        rest, self._held = self._held, ""
        return pii_restore(rest, self.placeholders)


def restore_all(text: str, placeholders: dict[str, str]) -> str:
    return pii_restore(text, placeholders) if PLACEHOLDER_RE.search(text) else text
