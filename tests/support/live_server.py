"""The real ASGI application served by uvicorn on loopback, inside the test process.

In-process so that it uses the test database and settings; on a thread so that
the test (or a browser) talks to it over real HTTP, with real streaming and
real client disconnects.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn


@dataclass(frozen=True)
class LiveServer:
    url: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_asgi_server() -> Iterator[LiveServer]:
    from config.asgi import application

    port = _free_port()
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
        timeout_graceful_shutdown=2,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ASGI server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        # Django opens a connection in each request's own sync thread; when the thread ends
        # the connection is only closed once collected. Collect now, so that the test
        # database can be dropped at the end of the session.
        gc.collect()
