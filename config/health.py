"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.preflight import readiness_checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests; touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, vector extension and broker all answer; 503 with details otherwise."""
    checks = readiness_checks()
    ready = all(check.ok for check in checks)
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": {check.name: check.as_dict() for check in checks},
        },
        status=200 if ready else 503,
    )
