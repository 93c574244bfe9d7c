"""The FastAPI application: routes of every domain, problem responses, health,
metrics, and the web pages."""

from __future__ import annotations

from fastapi import FastAPI

import csms
from csms.api.dependencies import ApiServices
from csms.api.problems import install_problem_handlers
from csms.charging.routes import router as charging_router
from csms.customers.routes import router as customer_router
from csms.observability.routes import router as observability_router
from csms.stations.public_routes import router as public_station_router
from csms.stations.routes import router as station_router
from csms.web.routes import live_router, static_files
from csms.web.routes import router as web_router


def create_api(services: ApiServices) -> FastAPI:
    api = FastAPI(
        title="CSMS",
        version=csms.__version__,
        description=(
            "A Charging Station Management System. Operators authenticate with "
            "`Authorization: Bearer <token>` (see `csms operator add`)."
        ),
    )
    api.state.services = services
    install_problem_handlers(api)
    api.include_router(customer_router)
    api.include_router(public_station_router)
    api.include_router(charging_router)
    api.include_router(station_router)
    api.include_router(live_router)
    api.include_router(observability_router)
    api.include_router(web_router)
    api.mount("/static", static_files(), name="static")

    @api.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return api
