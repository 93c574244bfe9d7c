"""The charge in progress on each connector (``active_charges``): held while a
record is Pending or Started, freed when it ends however it ends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from csms.app import Csms
from csms.charging.journal import Received
from csms.charging.models import ActiveCharge, ChargeDetailRecord
from csms.db.engine import create_sessionmaker
from csms.ocpp.framing import OcppVersion

from conftest import RegisteredStation
from support.clock import ManualClock
from support.transactions import records_of, transaction_event


async def _held(csms: Csms) -> list[tuple[int, int, str]]:
    async with create_sessionmaker(csms.engine)() as session:
        rows = await session.execute(
            select(
                ActiveCharge.evse_id, ActiveCharge.connector_id, ActiveCharge.record_id
            ).order_by(ActiveCharge.evse_id)
        )
        return [(row.evse_id, row.connector_id, row.record_id) for row in rows]


async def _send_201(
    csms: Csms, station_id: str, event_type: str, seq_no: int, clock: ManualClock
) -> None:
    payload = transaction_event(event_type, seq_no, at=clock.now(), wh=1000 + seq_no)
    await csms.charging.transaction_event_201(
        station_id,
        payload,
        received=Received(f"m-{seq_no}", OcppVersion.V201, payload, clock.now()),
    )


async def test_a_charge_holds_its_connector_until_it_ends(
    csms: Csms, station: RegisteredStation, clock: ManualClock
) -> None:
    await _send_201(csms, station.station_id, "Started", 0, clock)
    [record] = await records_of(csms, station.station_id)
    held = await _held(csms)

    await _send_201(csms, station.station_id, "Ended", 1, clock)

    assert held == [(1, 1, record.id)]
    assert await _held(csms) == []


async def test_a_charge_closed_while_its_station_is_away_frees_its_connector(
    csms: Csms, station: RegisteredStation, clock: ManualClock
) -> None:
    await _send_201(csms, station.station_id, "Started", 0, clock)
    [record] = await records_of(csms, station.station_id)

    await csms.charging.close_offline_charge(
        record.id, reason="StationOffline", stopped_at=clock.now()
    )

    assert await _held(csms) == []


async def test_a_row_left_by_an_ended_charge_does_not_hold_its_connector(
    csms: Csms, station: RegisteredStation, clock: ManualClock
) -> None:
    await _send_201(csms, station.station_id, "Started", 0, clock)
    [ended] = await records_of(csms, station.station_id)
    # The record ended but its connector row stayed behind.
    async with create_sessionmaker(csms.engine)() as session:
        record = await session.get(ChargeDetailRecord, ended.id)
        assert record is not None
        record.state = "Finished"
        await session.commit()
    clock.advance(timedelta(minutes=5).total_seconds())

    payload = transaction_event("Started", 0, at=clock.now(), transaction_id="TX-2")
    await csms.charging.transaction_event_201(
        station.station_id,
        payload,
        received=Received("m-tx-2", OcppVersion.V201, payload, clock.now()),
    )

    newest = (await records_of(csms, station.station_id))[-1]
    assert newest.transaction_id == "TX-2"
    assert newest.state == "Started"
    assert await _held(csms) == [(1, 1, newest.id)]
