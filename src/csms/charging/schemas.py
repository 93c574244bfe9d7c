"""What the HTTP API says about charging sessions and their records."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from csms.charging.models import ChargeDetailRecord
from csms.charging.state import CdrState
from csms.db.base import MAX_DATABASE_ID


class ChargingSessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    car_id: int = Field(ge=1, le=MAX_DATABASE_ID, description="One of your cars.")
    station_id: str = Field(min_length=1, max_length=48)
    evse_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DATABASE_ID,
        description="2.0.1 stations: the EVSE; 1.6: the connector.",
    )
    connector_id: int | None = Field(default=None, ge=1, le=MAX_DATABASE_ID)


class ChargeDetailRecordOut(BaseModel):
    id: str
    state: CdrState
    station_id: str
    evse_id: int
    connector_id: int
    car_id: int | None
    transaction_id: str | None
    meter_start_wh: int | None
    meter_last_wh: int | None
    meter_stop_wh: int | None
    energy_wh: int | None
    energy_kwh: float | None
    requested_at: datetime | None
    started_at: datetime | None
    stopped_at: datetime | None
    last_meter_at: datetime | None
    stop_reason: str | None
    failure_reason: str | None = Field(
        description="Why a charge failed to start, in words a driver understands."
    )
    flags: list[str]

    @classmethod
    def from_record(cls, record: ChargeDetailRecord) -> ChargeDetailRecordOut:
        energy = record.energy_wh
        return cls(
            id=record.id,
            state=CdrState(record.state),
            station_id=record.station_id,
            evse_id=record.evse_id,
            connector_id=record.connector_id,
            car_id=record.car_id,
            transaction_id=record.transaction_id,
            meter_start_wh=record.meter_start_wh,
            meter_last_wh=record.meter_last_wh,
            meter_stop_wh=record.meter_stop_wh,
            energy_wh=energy,
            energy_kwh=None if energy is None else round(energy / 1000, 3),
            requested_at=record.requested_at,
            started_at=record.started_at,
            stopped_at=record.stopped_at,
            last_meter_at=record.last_meter_at,
            stop_reason=record.stop_reason,
            failure_reason=record.failure_reason,
            flags=[str(flag) for flag in record.flags],
        )


class OperatorChargeDetailRecordOut(ChargeDetailRecordOut):
    customer_id: int | None
    id_token: str | None

    @classmethod
    def from_record(cls, record: ChargeDetailRecord) -> OperatorChargeDetailRecordOut:
        base = ChargeDetailRecordOut.from_record(record)
        return cls(
            **base.model_dump(),
            customer_id=record.customer_id,
            id_token=record.id_token,
        )


class ChargeDetailRecordPage(BaseModel):
    items: list[ChargeDetailRecordOut]
    next_before: str | None = Field(
        description="Pass as `before` for the next (older) page; null on the last."
    )


class OperatorChargeDetailRecordPage(BaseModel):
    items: list[OperatorChargeDetailRecordOut]
    next_before: str | None
