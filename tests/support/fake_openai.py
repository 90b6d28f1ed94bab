"""A local HTTP server that speaks OpenAI's /v1/embeddings wire protocol.

The official ``openai`` SDK talks to it over loopback, so the provider code is
exercised exactly as in production. Faults are scripted: queue HTTP statuses
(with optional Retry-After) to answer the next calls with.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def fake_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic unit vector for ``text`` (same text, same vector)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).normal(size=dimensions)
    return (vector / np.linalg.norm(vector)).tolist()


@dataclass
class FakeOpenAI:
    faults: deque[int] = field(default_factory=deque)  # statuses to answer next, in order
    requests: list[dict] = field(default_factory=list)
    base_url: str = ""

    def fail_next(self, *statuses: int) -> None:
        self.faults.extend(statuses)


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append({"path": self.path, "body": body})
            if state.faults:
                status = state.faults.popleft()
                self._json(
                    status,
                    {"error": {"message": f"scripted {status}", "type": "server_error"}},
                    {"Retry-After": "1"} if status == 429 else None,
                )
                return
            if self.path.rstrip("/").endswith("/embeddings"):
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                dimensions = int(body.get("dimensions") or 1536)
                self._json(
                    200,
                    {
                        "object": "list",
                        "model": body["model"],
                        "data": [
                            {
                                "object": "embedding",
                                "index": i,
                                "embedding": fake_vector(t, dimensions),
                            }
                            for i, t in enumerate(inputs)
                        ],
                        "usage": {
                            "prompt_tokens": sum(len(t.split()) for t in inputs),
                            "total_tokens": sum(len(t.split()) for t in inputs),
                        },
                    },
                )
                return
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    return Handler


@contextmanager
def running_fake_openai() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
