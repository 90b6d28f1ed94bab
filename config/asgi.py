"""ASGI entry point (uvicorn config.asgi:application)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from config.bootstrap import ensure_embedded_database

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
ensure_embedded_database(stop_at_exit=False)

application = get_asgi_application()
