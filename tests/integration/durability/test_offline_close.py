"""A charge closed without its stop is amended when the stop arrives late."""

from __future__ import annotations

from datetime import timedelta

from csms.app import Csms

from conftest import RegisteredStation
from support.clock import ManualClock
from support.frames import boot, raw_station, send_call
from support.stations import V16, V201
from support.transactions import (
    only_record_of,
    start_transaction,
    stop_transaction,
    transaction_event,
)


async def test_closing_an_offline_charge_flags_it_incomplete(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)
        await send_call(socket, "StartTransaction", start_transaction(at=clock.now()))
    started = await only_record_of(csms, station.station_id)

    closed = await csms.charging.close_offline_charge(
        started.id, reason="StationOffline", stopped_at=clock.now()
    )

    assert closed.state == "Finished"
    assert closed.stop_reason == "StationOffline"
    assert {"closed_without_stop", "incomplete"} <= set(closed.flags)
    assert not closed.complete


async def test_a_late_16_stop_amends_a_charge_closed_offline(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    now = clock.now()
    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)
        started = await send_call(socket, "StartTransaction", start_transaction(at=now))
        record = await only_record_of(csms, station.station_id)
        await csms.charging.close_offline_charge(
            record.id, reason="StationOffline", stopped_at=now + timedelta(hours=1)
        )

        answer = await send_call(
            socket,
            "StopTransaction",
            stop_transaction(
                started[2]["transactionId"],
                at=now + timedelta(minutes=30),
                meter_stop=7000,
            ),
        )

    amended = await only_record_of(csms, station.station_id)
    assert answer[0] == 3
    assert amended.meter_stop_wh == 7000
    assert amended.energy_wh == 6000
    assert amended.stopped_at == now.replace(
        microsecond=now.microsecond // 1000 * 1000
    ) + timedelta(minutes=30)
    assert "closed_without_stop" not in amended.flags
    assert amended.complete


async def test_a_late_201_ended_amends_a_charge_closed_offline(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    now = clock.now()
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        await send_call(
            socket, "TransactionEvent", transaction_event("Started", 0, at=now, wh=1000)
        )
        record = await only_record_of(csms, station.station_id)
        await csms.charging.close_offline_charge(
            record.id, reason="StationOffline", stopped_at=now + timedelta(hours=1)
        )

        await send_call(
            socket,
            "TransactionEvent",
            transaction_event("Ended", 1, at=now + timedelta(minutes=20), wh=4000),
        )

    amended = await only_record_of(csms, station.station_id)
    assert amended.state == "Finished"
    assert amended.meter_stop_wh == 4000
    assert amended.energy_wh == 3000
    assert amended.stop_reason == "EVDisconnected"
    assert "closed_without_stop" not in amended.flags
