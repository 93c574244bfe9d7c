"""Charging sessions and Charge Detail Records over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, status

from csms.api.dependencies import CustomerDep, OperatorDep, Services
from csms.charging.schemas import (
    ChargeDetailRecordOut,
    ChargeDetailRecordPage,
    ChargingSessionCreate,
    OperatorChargeDetailRecordOut,
    OperatorChargeDetailRecordPage,
)
from csms.charging.service import RecordFilter
from csms.charging.state import CdrState

router = APIRouter(prefix="/api/v1", tags=["charging"])

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=36)]


@router.post("/charging-sessions", status_code=status.HTTP_202_ACCEPTED)
async def start_charging_session(
    body: ChargingSessionCreate,
    services: Services,
    customer: CustomerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Retrying with the same key starts nothing twice.",
        ),
    ] = None,
) -> ChargeDetailRecordOut:
    """Start a charge for one of your cars; follow it at GET .../{id}."""
    record = await services.charging.start_session(
        customer.customer_id,
        car_id=body.car_id,
        station_id=body.station_id,
        evse_id=body.evse_id,
        connector_id=body.connector_id,
        idempotency_key=idempotency_key,
    )
    return ChargeDetailRecordOut.from_record(record)


@router.get("/charging-sessions/{record_id}")
async def get_charging_session(
    record_id: str, services: Services, customer: CustomerDep
) -> ChargeDetailRecordOut:
    record = await services.charging.get_for_customer(customer.customer_id, record_id)
    return ChargeDetailRecordOut.from_record(record)


@router.post(
    "/charging-sessions/{record_id}/stop", status_code=status.HTTP_202_ACCEPTED
)
async def stop_charging_session(
    record_id: str, services: Services, customer: CustomerDep
) -> ChargeDetailRecordOut:
    """Ask the station to stop; the record turns Finished when the station confirms."""
    record = await services.charging.stop_session(customer.customer_id, record_id)
    return ChargeDetailRecordOut.from_record(record)


@router.get("/charge-detail-records")
async def list_my_records(
    services: Services,
    customer: CustomerDep,
    limit: Limit = 50,
    before: Cursor = None,
) -> ChargeDetailRecordPage:
    records = await services.charging.list_records(
        RecordFilter(customer_id=customer.customer_id), before=before, limit=limit
    )
    items = [ChargeDetailRecordOut.from_record(r) for r in records]
    return ChargeDetailRecordPage(
        items=items, next_before=items[-1].id if len(items) == limit else None
    )


@router.get("/operator/charge-detail-records", tags=["operator: charging"])
async def list_all_records(
    services: Services,
    operator: OperatorDep,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    state: CdrState | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 50,
    before: Cursor = None,
) -> OperatorChargeDetailRecordPage:
    records = await services.charging.list_records(
        RecordFilter(station_id=station_id, state=state, since=since, until=until),
        before=before,
        limit=limit,
    )
    items = [OperatorChargeDetailRecordOut.from_record(r) for r in records]
    return OperatorChargeDetailRecordPage(
        items=items, next_before=items[-1].id if len(items) == limit else None
    )
