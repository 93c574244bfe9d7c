"""Transaction messages as stations send them, and what the CSMS stored of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from csms.app import Csms
from csms.charging.journal import TransactionMessage
from csms.charging.models import ChargeDetailRecord
from csms.db.engine import create_sessionmaker
from csms.ocpp.context import format_time

TRIGGERS = {
    "Started": "Authorized",
    "Updated": "MeterValuePeriodic",
    "Ended": "EVDeparted",
}


def energy_201(wh: int, at: datetime) -> list[dict[str, Any]]:
    return [{"timestamp": format_time(at), "sampledValue": [{"value": wh}]}]


def energy_16(wh: int, at: datetime) -> list[dict[str, Any]]:
    return [{"timestamp": format_time(at), "sampledValue": [{"value": str(wh)}]}]


def transaction_event(
    event_type: str,
    seq_no: int,
    *,
    at: datetime,
    transaction_id: str = "TX-1",
    wh: int | None = None,
    id_token: str | None = None,
) -> dict[str, Any]:
    """A 2.0.1 TransactionEvent on EVSE 1, connector 1."""
    info: dict[str, Any] = {"transactionId": transaction_id}
    if event_type == "Ended":
        info["stoppedReason"] = "EVDisconnected"
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": format_time(at),
        "triggerReason": TRIGGERS[event_type],
        "seqNo": seq_no,
        "transactionInfo": info,
        "evse": {"id": 1, "connectorId": 1},
    }
    if wh is not None:
        payload["meterValue"] = energy_201(wh, at)
    if id_token is not None:
        payload["idToken"] = {"idToken": id_token, "type": "ISO14443"}
    return payload


def start_transaction(
    *, at: datetime, id_tag: str = "CARD-1", meter_start: int = 1000
) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "idTag": id_tag,
        "meterStart": meter_start,
        "timestamp": format_time(at),
    }


def stop_transaction(
    transaction_id: int, *, at: datetime, meter_stop: int, id_tag: str | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "transactionId": transaction_id,
        "meterStop": meter_stop,
        "timestamp": format_time(at),
        "reason": "Local",
    }
    if id_tag is not None:
        payload["idTag"] = id_tag
    return payload


async def journal_of(csms: Csms, station_id: str) -> Sequence[TransactionMessage]:
    """The station's journal rows, in the order they were written."""
    async with create_sessionmaker(csms.engine)() as session:
        return (
            await session.scalars(
                select(TransactionMessage)
                .where(TransactionMessage.station_id == station_id)
                .order_by(TransactionMessage.id)
            )
        ).all()


async def records_of(csms: Csms, station_id: str) -> Sequence[ChargeDetailRecord]:
    async with create_sessionmaker(csms.engine)() as session:
        return (
            await session.scalars(
                select(ChargeDetailRecord)
                .where(ChargeDetailRecord.station_id == station_id)
                .order_by(ChargeDetailRecord.id)
            )
        ).all()


async def only_record_of(csms: Csms, station_id: str) -> ChargeDetailRecord:
    records = await records_of(csms, station_id)
    assert len(records) == 1, [(r.id, r.state, r.flags) for r in records]
    return records[0]
