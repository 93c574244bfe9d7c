"""What is suspect is stored, flagged and acknowledged, never refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from csms.app import Csms

from conftest import RegisteredStation
from support.clock import ManualClock
from support.customers import register_customer
from support.frames import boot, raw_station, send_call
from support.stations import V16, V201
from support.transactions import (
    journal_of,
    only_record_of,
    records_of,
    start_transaction,
    stop_transaction,
    transaction_event,
)

UNSET_CLOCK = datetime(1970, 1, 1, 0, 5, tzinfo=UTC)


async def test_a_start_with_an_unset_clock_is_stored_flagged_and_acknowledged(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)
        answer = await send_call(
            socket, "StartTransaction", start_transaction(at=UNSET_CLOCK)
        )

    record = await only_record_of(csms, station.station_id)
    [row] = await journal_of(csms, station.station_id)
    assert answer[0] == 3
    assert record.started_at == UNSET_CLOCK
    assert "implausible_time" in record.flags
    assert row.flags == ["implausible_time"]


async def test_a_reading_from_the_future_is_ordered_by_its_arrival(
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
        future = await send_call(
            socket,
            "TransactionEvent",
            transaction_event("Updated", 1, at=now + timedelta(days=3), wh=2000),
        )
        # A reading with a true time after it still counts.
        clock.advance(60)
        await send_call(
            socket,
            "TransactionEvent",
            transaction_event("Updated", 2, at=clock.now(), wh=2500),
        )

    record = await only_record_of(csms, station.station_id)
    assert future[0] == 3
    assert "implausible_time" in record.flags
    assert record.energy_wh == 1500


async def test_a_meter_going_backwards_is_flagged_and_counts_nothing(
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
        await send_call(
            socket,
            "TransactionEvent",
            transaction_event("Updated", 1, at=now + timedelta(minutes=1), wh=3000),
        )
        backwards = await send_call(
            socket,
            "TransactionEvent",
            transaction_event("Updated", 2, at=now + timedelta(minutes=2), wh=500),
        )

    record = await only_record_of(csms, station.station_id)
    rows = await journal_of(csms, station.station_id)
    assert backwards[0] == 3
    assert "meter_went_backwards" in record.flags
    assert record.energy_wh == 2000
    assert rows[-1].payload["meterValue"][0]["sampledValue"] == [{"value": 500}]


async def test_a_16_stop_for_an_unknown_transaction_makes_a_flagged_record(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    clock: ManualClock,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)

    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)
        answer = await send_call(
            socket,
            "StopTransaction",
            stop_transaction(
                424242, at=clock.now(), meter_stop=5000, id_tag=customer.id_token
            ),
        )

    record = await only_record_of(csms, station.station_id)
    assert answer[0] == 3
    assert answer[2] == {"idTagInfo": {"status": "Accepted"}}
    assert record.state == "Finished"
    assert record.transaction_id == "424242"
    assert record.flags == ["unknown_transaction"]
    assert record.customer_id == customer.customer_id
    assert record.meter_stop_wh == 5000
    assert not record.complete


async def test_a_201_ended_for_an_unknown_transaction_makes_a_flagged_record(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        answer = await send_call(
            socket,
            "TransactionEvent",
            transaction_event("Ended", 4, at=clock.now(), wh=5000),
        )

    record = await only_record_of(csms, station.station_id)
    assert answer[0] == 3
    assert record.state == "Finished"
    assert "unknown_transaction" in record.flags
    assert record.meter_stop_wh == 5000


async def test_a_station_cannot_stop_another_stations_transaction(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    await csms.stations.register(
        "CP-2", password="station-password-0002", latitude=52.5, longitude=13.4
    )
    async with raw_station(ocpp_url, station.station_id, station.password) as a:
        await boot(a, V16)
        started = await send_call(
            a, "StartTransaction", start_transaction(at=clock.now())
        )
    transaction_id = started[2]["transactionId"]

    async with raw_station(ocpp_url, "CP-2", "station-password-0002") as b:
        await boot(b, V16)
        answer = await send_call(
            b,
            "StopTransaction",
            stop_transaction(transaction_id, at=clock.now(), meter_stop=9000),
        )

    a_record = await only_record_of(csms, station.station_id)
    [b_record] = await records_of(csms, "CP-2")
    assert answer[0] == 3
    assert a_record.state == "Started"
    assert a_record.meter_stop_wh is None
    assert b_record.flags == ["unknown_transaction"]
    assert b_record.transaction_id == str(transaction_id)
