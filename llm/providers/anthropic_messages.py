"""Claude through Anthropic's Messages API (``POST /v1/messages``), streamed with the
official ``anthropic`` SDK, SDK retries off (the gateway is the one retry loop).

The system prompt goes out as one text block marked ``cache_control: ephemeral``: it is
the stable part of every request, so Anthropic can serve it from its prompt cache (reads
cost a tenth of fresh input) once it is long enough to be cached.

``CompletionRequest.temperature`` is not sent: SDK 2.x speaks API version 2026-10-21,
which answers 400 to any sampling parameter (temperature, top_p, top_k), and the SDK has
dropped them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message, MessageParam, TextBlockParam
from anthropic.types import Usage as AnthropicUsage

from llm.errors import ProviderError
from llm.events import (
    CompletionRequest,
    End,
    Event,
    FinishReason,
    Start,
    TextDelta,
    Usage,
)
from llm.providers.base import CallTimeouts
from llm.providers.openai_chat import (
    Deadlines,
    SdkProvider,
    http_timeout,
    malformed,
    status_error,
    stream_error_event,
    transport_error,
)

# See openai_chat.STREAM_FAILURES; this SDK also lets httpx2's errors through unwrapped.
STREAM_FAILURES = (anthropic.APIError, httpx2.HTTPError, ValueError, AttributeError, TypeError)
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}
# Anthropic's error types (its documented errors) → the HTTP status each comes with.
ERROR_TYPE_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class _Tokens:
    """Usage as the stream reports it: ``message_start`` first, then ``message_delta``
    (cumulative counts, which win when present)."""

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_write = 0

    def update(
        self,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read: int | None,
        cache_write: int | None,
    ) -> None:
        self.input = self.input if input_tokens is None else input_tokens
        self.output = self.output if output_tokens is None else output_tokens
        self.cache_read = self.cache_read if cache_read is None else cache_read
        self.cache_write = self.cache_write if cache_write is None else cache_write

    def event(self) -> Usage:
        # Anthropic's input_tokens leaves out cache reads and writes; Usage.input_tokens
        # counts every prompt token, as OpenAI's prompt_tokens does, so that one formula
        # (uncached = input - cache_read - cache_write) prices both providers.
        return Usage(
            input_tokens=self.input + self.cache_read + self.cache_write,
            output_tokens=self.output,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
        )


def _tokens_of(usage: AnthropicUsage) -> _Tokens:
    tokens = _Tokens()
    tokens.update(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read=usage.cache_read_input_tokens,
        cache_write=usage.cache_creation_input_tokens,
    )
    return tokens


class AnthropicProvider(SdkProvider):
    """``AnthropicProvider(api_key, base_url=None)``; ``name`` is ``"anthropic"``.

    Usage: ``input_tokens`` counts all prompt tokens (Anthropic's ``input_tokens`` +
    ``cache_read_input_tokens`` + ``cache_creation_input_tokens``); ``cache_read_tokens``
    and ``cache_write_tokens`` are the two cache counts.

    ``streaming=False`` makes one non-streaming request and yields the same events.
    """

    name = "anthropic"

    def __init__(
        self, api_key: str, base_url: str | None = None, *, streaming: bool = True
    ) -> None:
        self._streaming = streaming
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0)

    @staticmethod
    def _system(request: CompletionRequest) -> list[TextBlockParam] | anthropic.Omit:
        if not request.system:
            return anthropic.omit
        return [{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}]

    @staticmethod
    def _messages(request: CompletionRequest) -> list[MessageParam]:
        messages: list[MessageParam] = []
        for message in request.messages:
            if message.role == "user":
                messages.append({"role": "user", "content": message.content})
            else:
                messages.append({"role": "assistant", "content": message.content})
        return messages

    def _error(
        self,
        exc: Exception,
        timeouts: CallTimeouts,
        deadlines: Deadlines,
        *,
        reading_body: bool,
        text_sent: bool,
    ) -> ProviderError:
        if deadlines.expired is not None:
            return deadlines.error()
        if isinstance(exc, anthropic.APIStatusError):
            if exc.status_code < 400:  # an ``event: error`` inside a 200 stream
                return stream_error_event(
                    provider=self.name,
                    error_type=exc.type or "api_error",
                    detail=exc.api_message or exc.message,
                    statuses=ERROR_TYPE_STATUSES,
                )
            return status_error(
                provider=self.name,
                status=exc.status_code,
                headers=exc.response.headers,
                detail=exc.api_message or exc.message,
            )
        if isinstance(exc, anthropic.APIConnectionError | httpx2.HTTPError):
            # The SDK wraps network errors while connecting; while streaming it lets
            # httpx2's own errors through.
            return transport_error(
                exc.__cause__ if isinstance(exc, anthropic.APIConnectionError) else exc,
                provider=self.name,
                timeouts=timeouts,
                reading_body=reading_body,
                text_sent=text_sent,
            )
        return malformed(self.name, exc)  # unparsable JSON or an unexpected shape

    def _create(
        self, request: CompletionRequest, model: str, timeouts: CallTimeouts, *, stream: bool
    ) -> Any:
        """The Messages API call both modes make (temperature is not sent: see the module)."""
        return self._client.messages.create(
            model=model,
            system=self._system(request),
            messages=self._messages(request),
            max_tokens=request.max_tokens,
            stream=stream,
            timeout=http_timeout(timeouts),
        )

    def _stream(
        self,
        request: CompletionRequest,
        model: str,
        timeouts: CallTimeouts,
        deadlines: Deadlines,
    ) -> Iterator[Event]:
        try:
            events = self._create(request, model, timeouts, stream=True)
        except anthropic.APIError as exc:
            error = self._error(exc, timeouts, deadlines, reading_body=False, text_sent=False)
            raise error from exc
        with events:  # closes the HTTP response however we leave, GeneratorExit included
            deadlines.attach(events.response)
            request_id = events.response.headers.get("request-id")
            started = stopped = False
            stop_reason: str | None = None
            text_sent = False
            tokens = _Tokens()
            iterator = iter(events)
            while True:
                piece: str | None = None
                try:
                    event = next(iterator)
                    if event.type == "message_start":
                        request_id = event.message.id or request_id
                        tokens = _tokens_of(event.message.usage)
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        piece = event.delta.text
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        tokens.update(
                            input_tokens=event.usage.input_tokens,
                            output_tokens=event.usage.output_tokens,
                            cache_read=event.usage.cache_read_input_tokens,
                            cache_write=event.usage.cache_creation_input_tokens,
                        )
                    elif event.type == "message_stop":
                        stopped = True
                except StopIteration:
                    break
                except STREAM_FAILURES as exc:
                    error = self._error(
                        exc, timeouts, deadlines, reading_body=True, text_sent=text_sent
                    )
                    raise error from exc
                deadlines.check()
                if not started:
                    yield Start(provider=self.name, model=model, request_id=request_id)
                    started = True
                if (piece or stopped) and not deadlines.answered():
                    raise deadlines.error()
                if piece:
                    text_sent = True
                    yield TextDelta(piece)
        if not stopped:
            raise ProviderError(
                f"{self.name} stream ended without message_stop",
                error_class="stream_interrupted",
                retryable=True,
            )
        yield tokens.event()
        yield End(STOP_REASONS.get(stop_reason or "", "other"))

    def _complete(
        self,
        request: CompletionRequest,
        model: str,
        timeouts: CallTimeouts,
        deadlines: Deadlines,
    ) -> Iterator[Event]:
        try:
            message = self._create(request, model, timeouts, stream=False)
        except (anthropic.APIError, ValueError) as exc:
            error = self._error(exc, timeouts, deadlines, reading_body=False, text_sent=False)
            raise error from exc
        try:  # without strict validation the SDK builds models from any JSON object
            if not isinstance(message, Message):
                raise TypeError(type(message).__name__)
            text = "".join(block.text for block in message.content if block.type == "text")
            usage = _tokens_of(message.usage).event()
            finish = STOP_REASONS.get(message.stop_reason or "", "other")
        except (AttributeError, TypeError) as exc:
            raise malformed(self.name, exc) from exc
        deadlines.answered()  # a late but complete answer is still worth returning
        yield Start(provider=self.name, model=model, request_id=message.id)
        if text:
            yield TextDelta(text)
        yield usage
        yield End(finish)
