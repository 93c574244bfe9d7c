"""Charging sessions and Charge Detail Records over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, status
from fastapi.responses import StreamingResponse

from csms.api.dependencies import CustomerDep, OperatorDep, RowId, Services
from csms.charging.export import csv_header, csv_lines
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
StationFilter = Annotated[str | None, Query(max_length=48)]
CustomerFilter = Annotated[RowId | None, Query()]
FlaggedFilter = Annotated[
    bool | None,
    Query(description="true: only records with a flag; false: only without."),
]
CSV_PAGE_SIZE = 500


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
    station_id: StationFilter = None,
    customer_id: CustomerFilter = None,
    state: CdrState | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    flagged: FlaggedFilter = None,
    limit: Limit = 50,
    before: Cursor = None,
) -> OperatorChargeDetailRecordPage:
    records = await services.charging.list_records(
        RecordFilter(
            station_id=station_id,
            customer_id=customer_id,
            state=state,
            since=since,
            until=until,
            flagged=flagged,
        ),
        before=before,
        limit=limit,
    )
    items = [OperatorChargeDetailRecordOut.from_record(r) for r in records]
    return OperatorChargeDetailRecordPage(
        items=items, next_before=items[-1].id if len(items) == limit else None
    )


@router.get(
    "/operator/charge-detail-records.csv",
    tags=["operator: charging"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The records."}},
)
async def export_records_csv(
    services: Services,
    operator: OperatorDep,
    station_id: StationFilter = None,
    customer_id: CustomerFilter = None,
    state: CdrState | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    flagged: FlaggedFilter = None,
) -> StreamingResponse:
    """Every record matching the filters, newest first, streamed as CSV.

    Read a page at a time, so an export of millions of rows holds one page in
    memory. Text cells a spreadsheet would run as a formula start with ``'``.
    """
    where = RecordFilter(
        station_id=station_id,
        customer_id=customer_id,
        state=state,
        since=since,
        until=until,
        flagged=flagged,
    )

    async def lines() -> AsyncIterator[str]:
        yield csv_header()
        before = None
        while True:
            page = await services.charging.list_records(
                where, before=before, limit=CSV_PAGE_SIZE
            )
            if not page:
                return
            yield csv_lines(page)
            if len(page) < CSV_PAGE_SIZE:
                return
            before = page[-1].id

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="charge-detail-records.csv"'
        },
    )


@router.post(
    "/operator/charging-sessions/{record_id}/stop",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["operator: charging"],
)
async def stop_charging_session_as_operator(
    record_id: Annotated[str, Path(max_length=36)],
    services: Services,
    operator: OperatorDep,
) -> OperatorChargeDetailRecordOut:
    """Ask the station to stop any customer's charge; Finished when it confirms."""
    record = await services.operator_charging.stop_by_operator(
        record_id, by=operator.email
    )
    return OperatorChargeDetailRecordOut.from_record(record)
