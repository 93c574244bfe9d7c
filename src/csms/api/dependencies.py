"""What routes get injected: the services and the caller's identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.charging.operator_actions import OperatorCharging
from csms.charging.service import ChargingService
from csms.customers.service import CustomerIdentity, CustomerService
from csms.db.base import MAX_DATABASE_ID
from csms.events import EventFeed
from csms.observability.health import Readiness
from csms.observability.metrics import Metrics
from csms.operators.service import OperatorIdentity, OperatorService
from csms.stations.bulk import StationImporter
from csms.stations.commands import StationControl
from csms.stations.nearby import NearbyService
from csms.stations.service import StationService


@dataclass(frozen=True, slots=True)
class ApiServices:
    stations: StationService
    operators: OperatorService
    customers: CustomerService
    charging: ChargingService
    nearby: NearbyService
    importer: StationImporter
    events: EventFeed
    metrics: Metrics
    readiness: Readiness
    # The OCPP versions of the stations connected to this process, one each.
    connected_versions: Callable[[], list[str]]
    station_control: StationControl
    operator_charging: OperatorCharging
    # For read-only companions (metrics); writes go through the services.
    sessionmaker: async_sessionmaker[AsyncSession]


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


_bearer = HTTPBearer(auto_error=False, description="An operator API token")


async def require_operator(
    services: Annotated[ApiServices, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> OperatorIdentity:
    unauthorized = HTTPException(
        status_code=401,
        detail="An operator token is required (Authorization: Bearer <token>).",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None:
        services.metrics.count_auth_failure("api", "operator_token_missing")
        raise unauthorized
    identity = await services.operators.authenticate(credentials.credentials)
    if identity is None:
        services.metrics.count_auth_failure("api", "operator_token_invalid")
        raise unauthorized
    return identity


_customer_bearer = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    scheme_name="CustomerToken",
    description="A customer access token, from POST /api/v1/auth/token",
    auto_error=False,
)


async def require_customer(
    services: Annotated[ApiServices, Depends(get_services)],
    token: Annotated[str | None, Depends(_customer_bearer)],
) -> CustomerIdentity:
    if token is None:
        services.metrics.count_auth_failure("api", "customer_token_missing")
        raise HTTPException(
            status_code=401,
            detail="A customer token is required (Authorization: Bearer <token>).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    identity = await services.customers.authenticate(token)
    if identity is None:
        services.metrics.count_auth_failure("api", "customer_token_invalid")
        # RFC 6750, section 3.1: a token that is expired, altered or revoked.
        raise HTTPException(
            status_code=401,
            detail="The customer token is invalid or expired; log in again.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return identity


Services = Annotated[ApiServices, Depends(get_services)]
OperatorDep = Annotated[OperatorIdentity, Depends(require_operator)]
CustomerDep = Annotated[CustomerIdentity, Depends(require_customer)]

# A number too large to name a row must be a 422, not an overflow in a driver.
RowId = Annotated[int, Path(ge=1, le=MAX_DATABASE_ID)]
