"""What routes get injected: the services and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from csms.customers.service import CustomerService
from csms.operators.service import OperatorIdentity, OperatorService
from csms.stations.service import StationService


@dataclass(frozen=True, slots=True)
class ApiServices:
    stations: StationService
    operators: OperatorService
    customers: CustomerService


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
        raise unauthorized
    identity = await services.operators.authenticate(credentials.credentials)
    if identity is None:
        raise unauthorized
    return identity


Services = Annotated[ApiServices, Depends(get_services)]
OperatorDep = Annotated[OperatorIdentity, Depends(require_operator)]
