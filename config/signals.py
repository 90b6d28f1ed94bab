"""What the entry points tell the apps, without importing them.

``config`` is the composition root: its modules name the apps only as strings
(INSTALLED_APPS, URL includes). Where an entry point must start app code, it sends a
signal the app connects in its ``AppConfig.ready()``.
"""

from django.dispatch import Signal

# The ASGI server sent the lifespan start-up: it is about to serve (ops connects the
# warm-up). No kwargs.
server_starting = Signal()
