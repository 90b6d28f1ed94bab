"""The provider interface."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from llm.events import CompletionRequest, Event


@dataclass(frozen=True)
class CallTimeouts:
    connect: float = 5.0  # TCP/TLS connect
    first_token: float = 10.0  # from sending the request to the first text delta
    total: float = 10.0  # the whole call


class Provider(Protocol):
    name: str  # "openai", "anthropic", "openai_compatible", "local"
    # Optional ``local = True``: the provider runs on the operator's premises, so prompts
    # are not redacted for it and local-only accounts may use it (llm.privacy).

    def stream(
        self, request: CompletionRequest, *, model: str, timeouts: CallTimeouts
    ) -> Iterator[Event]:
        """Yield Start, TextDelta..., Usage, End.

        Raise llm.errors.ProviderError for a failure before or during the
        stream (never yield Error: the gateway decides what the caller sees).
        Must stop promptly when the consumer stops iterating (close the response).
        """
        ...
