"""One streaming event model for every provider.

A call yields ``Start``, then any number of ``TextDelta``, then ``Usage`` (once,
when the provider reports it), then ``End``. A failure ends the stream with
``Error`` instead of ``End``. A non-streaming call is the same stream, collected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FinishReason = Literal["stop", "length", "content_filter", "error", "cancelled", "other"]


@dataclass(frozen=True)
class Start:
    provider: str  # e.g. "openai", "anthropic", "local"
    model: str
    request_id: str | None = None  # the provider's id for the response, when it has one


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0  # prompt tokens served from the provider's prompt cache
    cache_write_tokens: int = 0  # prompt tokens written to it (Anthropic bills these higher)
    estimated: bool = False  # counted locally because the provider did not say


@dataclass(frozen=True)
class End:
    finish_reason: FinishReason = "stop"


@dataclass(frozen=True)
class Error:
    message: str  # for people: what went wrong, without secrets
    error_class: str  # e.g. "rate_limited", "timeout", "server_error", "bad_request"
    retryable: bool


Event = Start | TextDelta | Usage | End | Error


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class ContextPassage:
    """A retrieved passage as the answer pipeline numbered it ([1], [2]…).

    Language models read passages from the rendered prompt; the local extractive
    answerer, which has no use for a prompt, reads them here.
    """

    number: int
    text: str
    title: str = ""
    heading_path: str = ""
    embedding_model: str = ""
    # kb.guard.passages flags of the chunk (e.g. "instructions"): marked in the prompt.
    flags: tuple[str, ...] = ()
    # The chunk's knowledge base: where its sentences' vectors are stored (kb.embeddings.texts).
    knowledge_base_id: int | None = None


@dataclass(frozen=True)
class CompletionRequest:
    """What the gateway asks a provider for; the system prompt is kept apart on purpose
    (never mixed with user or document text, and cacheable on its own).

    ``question`` and ``passages`` repeat, in structured form, what the last user
    message holds; only providers that do not read prompts use them.
    """

    system: str
    messages: tuple[Message, ...]
    max_tokens: int = 1024
    temperature: float = 0.2
    question: str = ""
    passages: tuple[ContextPassage, ...] = ()
