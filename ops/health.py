"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ops.preflight import CheckResult, readiness_checks
from ops.warmup import warm_up_state


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests; touches nothing else."""
    return JsonResponse({"status": "ok"})


def warm_up_check() -> CheckResult:
    """Not ready while the start-up warm-up runs (a failed one loads on first use)."""
    state = warm_up_state()
    detail = f"{state.state}: {state.detail}" if state.detail else state.state
    return CheckResult("warm_up", state.state != "warming", detail, 0.0)


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, vector extension and broker all answer and the warm-up is over; 503
    with details otherwise."""
    checks = readiness_checks()
    if warm_up_state().state != "off":  # a process started without a lifespan has none
        checks.append(warm_up_check())
    ready = all(check.ok for check in checks)
    response = JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": {check.name: check.as_dict() for check in checks},
        },
        status=200 if ready else 503,
    )
    if not ready and all(check.ok or check.name == "warm_up" for check in checks):
        # Warming up is the expected state of a starting process, polled every few
        # hundred ms by `serve` and load balancers: not an ERROR line per poll from
        # django.request (which skips responses marked as logged). A failing database
        # or broker is still logged as the error it is.
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response
