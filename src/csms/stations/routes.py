"""Operator endpoints for stations: register, list, inspect, rotate passwords."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from csms.api.dependencies import OperatorDep, Services
from csms.stations.schemas import (
    PasswordChange,
    PasswordOut,
    StationCreate,
    StationCreated,
    StationOut,
    StationPage,
)
from csms.stations.state import StationState

router = APIRouter(prefix="/api/v1/operator/stations", tags=["operator: stations"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_station(
    body: StationCreate, services: Services, operator: OperatorDep
) -> StationCreated:
    station, generated = await services.stations.register(
        body.id,
        password=body.password,
        name=body.name,
        latitude=body.location.latitude if body.location else None,
        longitude=body.location.longitude if body.location else None,
        security_profile=body.security_profile,
    )
    view = StationOut.from_station(station)
    return StationCreated(**view.model_dump(), password=generated)


@router.get("")
async def list_stations(
    services: Services,
    operator: OperatorDep,
    state: StationState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(max_length=48)] = None,
) -> StationPage:
    stations = await services.stations.list_stations(
        state=state, limit=limit, after=after
    )
    items = [StationOut.from_station(s) for s in stations]
    next_after = items[-1].id if len(items) == limit else None
    return StationPage(items=items, next_after=next_after)


@router.get("/{station_id}")
async def get_station(
    station_id: str, services: Services, operator: OperatorDep
) -> StationOut:
    return StationOut.from_station(await services.stations.get(station_id))


@router.post("/{station_id}/password")
async def change_password(
    station_id: str, body: PasswordChange, services: Services, operator: OperatorDep
) -> PasswordOut:
    """Rotate a station's password; a generated one is shown only in this answer."""
    password = await services.stations.set_password(station_id, password=body.password)
    return PasswordOut(password=password)
