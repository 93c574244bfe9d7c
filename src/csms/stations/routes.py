"""Operator endpoints for stations: register, list, inspect, rotate passwords,
read their event log, and send them commands (reset, unlock, availability)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from csms.api.dependencies import OperatorDep, Services
from csms.stations.bulk import ImportRefused, StationRow, find_duplicates
from csms.stations.commands import CommandOutcome
from csms.stations.schemas import (
    AvailabilityChange,
    CommandOut,
    ConnectorRef,
    PasswordChange,
    PasswordOut,
    ResetRequest,
    StationBulkCreate,
    StationBulkCreated,
    StationCreate,
    StationCreated,
    StationEventOut,
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


@router.post("/bulk", status_code=status.HTTP_201_CREATED)
async def import_stations(
    body: StationBulkCreate, services: Services, operator: OperatorDep
) -> StationBulkCreated:
    """Register many stations at once; all or none. Generated passwords are
    shown only in this answer."""
    rows = [
        StationRow(
            line=index + 1,
            station_id=item.id,
            latitude=item.location.latitude if item.location else None,
            longitude=item.location.longitude if item.location else None,
            name=item.name,
            password=item.password,
            security_profile=item.security_profile,
        )
        for index, item in enumerate(body.stations)
    ]
    duplicates = find_duplicates(rows)
    if duplicates:
        raise ImportRefused(duplicates)
    result = await services.importer.import_rows(rows)
    return StationBulkCreated(
        imported=result.imported, passwords=result.generated_passwords
    )


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


@router.get("/{station_id}/events")
async def list_station_events(
    station_id: str,
    services: Services,
    operator: OperatorDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[StationEventOut]:
    """The station's audit log, newest first: boots, failed logins, commands."""
    await services.stations.get(station_id)
    events = await services.stations.list_events(station_id, limit=limit)
    return [StationEventOut.from_event(event) for event in events]


@router.post("/{station_id}/reset")
async def reset_station(
    station_id: str, body: ResetRequest, services: Services, operator: OperatorDep
) -> CommandOut:
    """Soft: once idle, ending charges properly. Hard: at once."""
    outcome = await services.station_control.reset(
        station_id, kind=body.type, by=operator.email
    )
    return _command_out(outcome)


@router.post("/{station_id}/unlock-connector")
async def unlock_connector(
    station_id: str, body: ConnectorRef, services: Services, operator: OperatorDep
) -> CommandOut:
    """Release a cable stuck in the connector."""
    outcome = await services.station_control.unlock_connector(
        station_id,
        evse_id=body.evse_id,
        connector_id=body.connector_id,
        by=operator.email,
    )
    return _command_out(outcome)


@router.post("/{station_id}/availability")
async def change_availability(
    station_id: str,
    body: AvailabilityChange,
    services: Services,
    operator: OperatorDep,
) -> CommandOut:
    """Take the station (or one EVSE) out of service, or back into it."""
    outcome = await services.station_control.change_availability(
        station_id,
        availability=body.availability,
        evse_id=body.evse_id,
        connector_id=body.connector_id,
        by=operator.email,
    )
    return _command_out(outcome)


def _command_out(outcome: CommandOutcome) -> CommandOut:
    return CommandOut(action=outcome.action, status=outcome.status)
