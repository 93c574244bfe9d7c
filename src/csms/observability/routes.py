"""``/metrics`` for Prometheus and ``/readyz`` for load balancers.

Neither needs a login: scrapers and load balancers carry no tokens. Keep both
reachable only from inside the network (docs/observability.md).
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from csms.api.dependencies import Services
from csms.api.problems import problem
from csms.observability.metrics import CONTENT_TYPE, refresh_gauges

# TODO: no login on either; the API port must be reachable from inside the
# network only, or a proxy must filter these paths.
router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus."}},
)
async def metrics(services: Services) -> Response:
    """Prometheus text format; the list is in docs/observability.md."""
    await refresh_gauges(
        services.metrics,
        services.sessionmaker,
        connected_versions=services.connected_versions,
    )
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


# Not in the API description: a probe for load balancers, whose 503 is its
# purpose rather than a failure (docs/observability.md describes it).
@router.get("/readyz", include_in_schema=False)
async def readyz(services: Services) -> Response:
    """Ready when the database answers and the gateway listens; 503 otherwise."""
    checks = await services.readiness.check()
    failing = {name: state for name, state in checks.items() if state != "ok"}
    if failing:
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            title="Not ready",
            detail="; ".join(f"{name}: {state}" for name, state in failing.items()),
            checks=checks,
        )
    return JSONResponse({"status": "ready", "checks": checks})
