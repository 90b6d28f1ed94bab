"""ASGI entry point (uvicorn config.asgi:application).

Django's handler serves HTTP. The ASGI lifespan start-up, which a server sends once when
it starts serving (``manage.py serve``, uvicorn in the image), becomes
``config.signals.server_starting``, on which ops starts the warm-up (``ops/warmup.py``,
connected in ``ops/apps.py``). Servers run with ``--lifespan off`` (the tests' live
server) skip it.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

from config.signals import server_starting
from embedded.bootstrap import ensure_embedded_database

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
ensure_embedded_database(stop_at_exit=False)

django_application = get_asgi_application()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        await django_application(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # ops starts the warm-up on its own thread: start-up completes at once.
            server_starting.send(sender=application)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
