"""Project configuration: settings, URLs, ASGI and Celery entry points, embedded bootstrap."""
