"""A local HTTP server that speaks OpenAI's Chat Completions and Anthropic's Messages APIs.

The official ``openai`` and ``anthropic`` SDKs talk to it over loopback, so the providers
are tested on the real wire protocol: request paths and bodies, SSE framing (chunked
HTTP/1.1, like the real services), usage fields, error bodies and headers.

One server serves both APIs (``/v1/chat/completions`` and ``/v1/messages``); point the
OpenAI SDK at ``server.openai_base_url`` and the Anthropic SDK at
``server.anthropic_base_url``. Each incoming call takes the next step of a script the test
queues, in whichever API's dialect was called::

    with running_fake_llm() as server:
        server.script(Fault(status=429, retry_after=1), Reply(text="Hello world", chunks=5))

When the script is empty the server answers ``server.default`` (a plain ``Reply``). Every
request is recorded (``server.requests``) so tests can count attempts and inspect bodies, and
``server.client_disconnected`` is set when the client goes away before a reply is complete.
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# --- the script --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A successful answer, streamed as ``chunks`` text deltas ``chunk_delay`` seconds apart.

    Token counts are given once, the OpenAI way (``input_tokens`` counts every prompt token,
    cached ones included); the Anthropic dialect reports ``input_tokens`` minus the cache
    reads and writes, as Anthropic does. ``usage=False`` plays an OpenAI-compatible server
    that never reports usage, even when asked to.
    """

    text: str = "Hello from the fake model."
    chunks: int = 3
    chunk_delay: float = 0.0
    finish_reason: str = "stop"  # "stop" | "length" | "content_filter" (OpenAI words)
    input_tokens: int = 42
    output_tokens: int | None = None  # None: one per word of text
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    usage: bool = True


@dataclass(frozen=True)
class Fault:
    """An HTTP error answer, with the API's own error body.

    ``retry_after`` becomes the Retry-After header as given (seconds, or an HTTP-date
    string); ``retry_after_ms`` the non-standard retry-after-ms header both SDKs read;
    ``should_retry`` the x-should-retry header. ``error_type`` defaults to what each API
    sends for the status (e.g. Anthropic's ``overloaded_error`` for 529).
    """

    status: int
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None
    error_type: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class SlowFirstToken:
    """Wait ``seconds`` before the first text delta, then answer ``then``.

    By default the response headers (and, for Anthropic, ``message_start``) are sent at once
    and the wait comes before the text, as with a real slow model; ``before_headers=True``
    waits before sending anything. ``keepalive_every`` sends keep-alive traffic while waiting
    (Anthropic ``ping`` events, SSE comments for OpenAI), which a socket read timeout alone
    would mistake for progress.
    """

    seconds: float
    then: Reply = field(default_factory=Reply)
    before_headers: bool = False
    keepalive_every: float | None = None


@dataclass(frozen=True)
class Disconnect:
    """Send ``after_chunks`` of the ``chunks`` deltas of ``text``, then drop the connection.

    ``after_chunks=0`` with ``before_headers=True`` drops it before any response at all.
    A non-streaming call gets the headers and half of the body, then the drop.
    """

    after_chunks: int = 2
    text: str = "This answer is cut short by a dropped connection."
    chunks: int = 6
    before_headers: bool = False


@dataclass(frozen=True)
class MalformedJson:
    """Send ``after_chunks`` good deltas, then an event whose data is not JSON.

    A non-streaming call gets a 200 ``application/json`` body that is not JSON.
    """

    after_chunks: int = 0
    text: str = "Some text before the garbage."
    chunks: int = 4


@dataclass(frozen=True)
class WrongShape:
    """Like MalformedJson, but the JSON is valid and its structure is not the API's."""

    after_chunks: int = 0
    text: str = "Some text before the odd event."
    chunks: int = 4


@dataclass(frozen=True)
class StreamError:
    """Send ``after_chunks`` deltas, then the API's in-stream error event.

    Anthropic: ``event: error`` with ``{"type": "error", "error": {...}}`` (its
    ``overloaded_error`` mid-stream is common); OpenAI: a data chunk ``{"error": {...}}``.
    A non-streaming call gets the equivalent HTTP error instead.
    """

    after_chunks: int = 1
    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    text: str = "Partial answer that the provider abandons."
    chunks: int = 4


@dataclass(frozen=True)
class Respond:
    """Decide the step from the request itself: ``make(body)`` returns the step to play.

    Plays a model that reads its prompt, e.g. one that obeys instructions it finds in it.
    """

    make: Callable[[dict[str, Any]], Step]


Step = (
    Reply | Fault | SlowFirstToken | Disconnect | MalformedJson | WrongShape | StreamError | Respond
)
_Broken = Disconnect | MalformedJson | WrongShape | StreamError


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]


def split_text(text: str, parts: int) -> list[str]:
    """``text`` in ``parts`` nearly equal, non-empty pieces (fewer if text is shorter)."""
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return [piece for piece in pieces if piece]


# --- dialects: how each API words the same events ----------------------------------------

# What each API calls the error of a status (bodies as the real services send them).
_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests"}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ANTHROPIC_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}
_ids = itertools.count(1)


def _sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


def _output_tokens(reply: Reply) -> int:
    return reply.output_tokens if reply.output_tokens is not None else len(reply.text.split())


class _OpenAIDialect:
    request_id_header = "x-request-id"

    def __init__(self, body: dict[str, Any]) -> None:
        self.model = str(body.get("model", ""))
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.id = f"chatcmpl-fake{next(_ids)}"
        self.created = int(time.time())

    def error_body(self, status: int, error_type: str | None, message: str) -> dict[str, Any]:
        kind = error_type or _OPENAI_ERROR_TYPES.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def _usage(self, reply: Reply) -> dict[str, Any]:
        output = _output_tokens(reply)
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": output,
            "total_tokens": reply.input_tokens + output,
            "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def completion(self, reply: Reply) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
        }
        if reply.usage:
            body["usage"] = self._usage(reply)
        return body

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            chunk["usage"] = None
        return _sse(chunk)

    def opening(self, reply: Reply) -> list[bytes]:
        # OpenAI's first chunk carries the role and empty content, before any text.
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def delta(self, text: str) -> bytes:
        return self._chunk({"content": text})

    def closing(self, reply: Reply) -> list[bytes]:
        frames = [self._chunk({}, reply.finish_reason)]
        if self.include_usage and reply.usage:
            frames.append(
                _sse(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "system_fingerprint": "fp_fake",
                        "choices": [],
                        "usage": self._usage(reply),
                    }
                )
            )
        frames.append(_sse("[DONE]"))
        return frames

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"

    def malformed(self) -> bytes:
        return b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "x"\n\n'

    def wrong_shape(self) -> bytes:
        return _sse({"unexpected": True})

    def error_event(self, error_type: str, message: str) -> bytes:
        return _sse({"error": {"message": message, "type": error_type, "code": None}})


class _AnthropicDialect:
    request_id_header = "request-id"

    def __init__(self, body: dict[str, Any]) -> None:
        self.model = str(body.get("model", ""))
        self.id = f"msg_fake{next(_ids)}"

    def error_body(self, status: int, error_type: str | None, message: str) -> dict[str, Any]:
        kind = error_type or _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": f"req_fake{next(_ids)}",
        }

    def _usage(self, reply: Reply, output_tokens: int) -> dict[str, Any]:
        uncached = reply.input_tokens - reply.cache_read_tokens - reply.cache_write_tokens
        return {
            "input_tokens": max(0, uncached),
            "cache_creation_input_tokens": reply.cache_write_tokens,
            "cache_read_input_tokens": reply.cache_read_tokens,
            "output_tokens": output_tokens,
        }

    def _stop_reason(self, reply: Reply) -> str:
        return _ANTHROPIC_STOP_REASONS.get(reply.finish_reason, reply.finish_reason)

    def completion(self, reply: Reply) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": None,
            "usage": self._usage(reply, _output_tokens(reply)),
        }

    def opening(self, reply: Reply) -> list[bytes]:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(reply, 1),
        }
        return [
            _sse({"type": "message_start", "message": message}, "message_start"),
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            _sse({"type": "ping"}, "ping"),
        ]

    def delta(self, text: str) -> bytes:
        return _sse(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
            "content_block_delta",
        )

    def closing(self, reply: Reply) -> list[bytes]:
        return [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
                    "usage": {"output_tokens": _output_tokens(reply)},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]

    def keepalive(self) -> bytes:
        return _sse({"type": "ping"}, "ping")

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0,\n\n'

    def wrong_shape(self) -> bytes:
        return _sse({"type": "content_block_delta", "index": 0}, "content_block_delta")

    def error_event(self, error_type: str, message: str) -> bytes:
        return _sse({"type": "error", "error": {"type": error_type, "message": message}}, "error")


_Dialect = _OpenAIDialect | _AnthropicDialect
_STREAM_ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429}


# --- the server ---------------------------------------------------------------------------


class FakeLLMServer:
    """The scripted server; use ``running_fake_llm()`` to start and stop it."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.client_disconnected = threading.Event()
        self.streams_completed = 0  # streamed replies written to their end
        self.default: Step = Reply()
        self.errors: list[BaseException] = []  # unexpected handler failures (bugs here)
        self.openai_base_url = ""
        self.anthropic_base_url = ""
        self._steps: deque[Step] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def script(self, *steps: Step) -> None:
        """Queue how the next calls are answered, one step per call, in order."""
        with self._lock:
            self._steps.extend(steps)

    def next_step(self) -> Step:
        with self._lock:
            return self._steps.popleft() if self._steps else self.default

    @property
    def pending_steps(self) -> int:
        with self._lock:
            return len(self._steps)

    def start(self) -> None:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler, self)
        port = self._httpd.server_address[1]
        self.openai_base_url = f"http://127.0.0.1:{port}/v1"
        self.anthropic_base_url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers that are waiting in a scripted delay
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False if the server is stopping."""
        return not self._stopping.wait(seconds)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        state: FakeLLMServer,
    ) -> None:
        self.state = state
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # the client went away: expected, not worth a traceback
            return
        if error is not None:
            self.state.errors.append(error)
        super().handle_error(request, client_address)


class _ClientGone(Exception):
    """The client closed the connection while we were still answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as the real APIs
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing

    @property
    def state(self) -> FakeLLMServer:
        return self.server.state

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:  # BrokenPipe, ConnectionReset: the client is gone
            raise _ClientGone from exc

    def _chunk(self, *frames: bytes) -> None:
        """Write SSE frames as HTTP chunks, in one write (no window for a half-sent end)."""
        self._write(b"".join(f"{len(data):x}\r\n".encode() + data + b"\r\n" for data in frames))

    def _client_gone(self) -> bool:
        """Whether the client closed its end (EOF is readable), without consuming data."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _pause(
        self, seconds: float, keepalive: bytes | None = None, every: float | None = None
    ) -> None:
        """Sleep, noticing a client that leaves meanwhile; send keep-alives if asked."""
        deadline = time.monotonic() + seconds
        next_keepalive = time.monotonic() + every if every else float("inf")
        while (remaining := deadline - time.monotonic()) > 0:
            if self._client_gone():
                raise _ClientGone
            if keepalive is not None and time.monotonic() >= next_keepalive:
                self._chunk(keepalive)
                next_keepalive += every or 0.0
            if not self.state.wait(min(remaining, 0.01)):
                raise _ClientGone  # server stopping: abandon the answer

    def _head(self, status: int, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
        except OSError as exc:
            raise _ClientGone from exc

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        payload = json.dumps(body).encode()
        self._head(
            status,
            {"Content-Type": "application/json", "Content-Length": str(len(payload)), **headers},
        )
        self._write(payload)

    def _start_stream(self, dialect: _Dialect) -> None:
        self._head(
            200,
            {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "Transfer-Encoding": "chunked",
                dialect.request_id_header: f"req_fake{next(_ids)}",
            },
        )

    def _drop(self) -> None:
        """Drop the connection abruptly, mid-response (a scripted fault, not the client)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- requests

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsable": raw.decode(errors="replace")}
        self.state.requests.append(
            RecordedRequest(
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
            )
        )
        path = self.path.split("?")[0].rstrip("/")
        dialect: _Dialect
        if path.endswith("/chat/completions"):
            dialect = _OpenAIDialect(body)
        elif path.endswith("/messages"):
            dialect = _AnthropicDialect(body)
        else:
            self._json(404, {"error": {"message": "not found", "type": "not_found"}}, {})
            return
        try:
            step = self.state.next_step()
            if isinstance(step, Respond):
                step = step.make(body)
            self._answer(step, dialect, streaming=bool(body.get("stream")))
        except _ClientGone:
            self.close_connection = True
            if not self.state._stopping.is_set():
                self.state.client_disconnected.set()

    def _answer(self, step: Step, dialect: _Dialect, *, streaming: bool) -> None:
        if isinstance(step, Fault):
            self._fault(step, dialect)
        elif isinstance(step, SlowFirstToken):
            if step.before_headers or not streaming:
                self._pause(step.seconds)
                self._reply(step.then, dialect, streaming=streaming)
            else:
                self._reply(step.then, dialect, streaming=True, first_token_after=step)
        elif isinstance(step, StreamError) and not streaming:
            status = _STREAM_ERROR_STATUS.get(step.error_type, 500)
            self._fault(Fault(status, error_type=step.error_type, message=step.message), dialect)
        elif isinstance(step, _Broken):
            self._broken(step, dialect, streaming=streaming)
        elif isinstance(step, Respond):
            raise TypeError("a Respond step is resolved before it is answered")
        else:
            self._reply(step, dialect, streaming=streaming)

    def _fault(self, fault: Fault, dialect: _Dialect) -> None:
        headers = {dialect.request_id_header: f"req_fake{next(_ids)}"}
        if fault.retry_after is not None:
            retry_after = fault.retry_after
            headers["Retry-After"] = (
                f"{retry_after:g}" if isinstance(retry_after, int | float) else retry_after
            )
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
        if fault.should_retry is not None:
            headers["x-should-retry"] = "true" if fault.should_retry else "false"
        body = dialect.error_body(fault.status, fault.error_type, fault.message or "scripted")
        self._json(fault.status, body, headers)

    def _reply(
        self,
        reply: Reply,
        dialect: _Dialect,
        *,
        streaming: bool,
        first_token_after: SlowFirstToken | None = None,
    ) -> None:
        if not streaming:
            self._json(200, dialect.completion(reply), {dialect.request_id_header: "req_fake"})
            return
        self._start_stream(dialect)
        self._chunk(*dialect.opening(reply))
        if first_token_after is not None:
            self._pause(
                first_token_after.seconds, dialect.keepalive(), first_token_after.keepalive_every
            )
        for i, piece in enumerate(split_text(reply.text, reply.chunks)):
            if i and reply.chunk_delay:
                self._pause(reply.chunk_delay)
            self._chunk(dialect.delta(piece))
        self._chunk(*dialect.closing(reply), b"")  # the empty chunk ends the body
        self.state.streams_completed += 1

    def _broken(self, step: _Broken, dialect: _Dialect, *, streaming: bool) -> None:
        if isinstance(step, Disconnect) and step.before_headers:
            self._drop()
            return
        reply = Reply(text=step.text, chunks=step.chunks)
        if not streaming and isinstance(step, WrongShape):
            self._json(200, {"unexpected": True}, {})
            return
        if not streaming:
            payload = json.dumps(dialect.completion(reply)).encode()
            if isinstance(step, MalformedJson):
                payload = payload[: len(payload) // 2]
            declared = {"Content-Type": "application/json", "Content-Length": str(len(payload) * 2)}
            self._head(200, declared)
            self._write(payload)
            if isinstance(step, Disconnect):
                self._drop()
            else:  # a complete, declared-length body that is not JSON
                self._write(b" " * len(payload))
            return
        self._start_stream(dialect)
        self._chunk(*dialect.opening(reply))
        for piece in split_text(step.text, step.chunks)[: step.after_chunks]:
            self._chunk(dialect.delta(piece))
        if isinstance(step, Disconnect):
            self._drop()
            return
        if isinstance(step, MalformedJson):
            self._chunk(dialect.malformed(), b"")
        elif isinstance(step, WrongShape):
            self._chunk(dialect.wrong_shape(), b"")
        else:
            self._chunk(dialect.error_event(step.error_type, step.message), b"")


@contextmanager
def running_fake_llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def fake_llm_routes(
    settings: Any, chain: str = "openai_compatible:fake-model", *, retries: int | None = 0
) -> Iterator[FakeLLMServer]:
    """The fake server as the ``openai_compatible`` provider, every answer route set to
    ``chain`` (LlmRoute rows), retries off unless ``retries`` says otherwise."""
    from llm.models import LlmRoute
    from llm.providers.registry import reset_providers

    with running_fake_llm() as server:
        settings.CAIRN_OPENAI_COMPATIBLE_BASE_URL = server.openai_base_url
        if retries is not None:
            settings.CAIRN_LLM_RETRIES = retries
        reset_providers()
        for name in ("simple", "complex"):
            LlmRoute.objects.create(name=name, chain=chain)
        try:
            yield server
        finally:
            reset_providers()
