"""Retries are recognised by business key, never by message id: a message
already applied is journaled as a duplicate and not applied again."""

from __future__ import annotations

from datetime import timedelta

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
    start_transaction,
    stop_transaction,
    transaction_event,
)


async def test_a_repeated_201_event_is_journaled_as_duplicate_and_not_applied(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    clock: ManualClock,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    now = clock.now()
    update = transaction_event(
        "Updated", 1, at=now + timedelta(minutes=1), wh=3000, id_token=customer.id_token
    )
    # The same seqNo again, under a new message id, and with a reading that
    # would move the meter if it were applied.
    retry = {**update, "meterValue": update["meterValue"][:]}
    retry["meterValue"][0] = {
        **retry["meterValue"][0],
        "sampledValue": [{"value": 9000}],
    }
    retry["timestamp"] = update["timestamp"]

    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        await send_call(
            socket, "TransactionEvent", transaction_event("Started", 0, at=now, wh=1000)
        )
        first = await send_call(socket, "TransactionEvent", update, message_id="u-1")
        again = await send_call(socket, "TransactionEvent", retry, message_id="u-2")

    record = await only_record_of(csms, station.station_id)
    rows = await journal_of(csms, station.station_id)
    assert again[2] == first[2] == {"idTokenInfo": {"status": "Accepted"}}
    assert record.energy_wh == 2000
    assert [(r.message_id, r.seq_no, r.duplicate) for r in rows[1:]] == [
        ("u-1", 1, False),
        ("u-2", 1, True),
    ]


async def test_reordered_201_updates_end_with_the_right_energy(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    now = clock.now()
    events = [
        transaction_event("Started", 0, at=now, wh=1000),
        transaction_event("Updated", 2, at=now + timedelta(minutes=2), wh=3000),
        transaction_event("Updated", 1, at=now + timedelta(minutes=1), wh=2000),
        transaction_event("Ended", 3, at=now + timedelta(minutes=3), wh=3500),
    ]

    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        answers = [await send_call(socket, "TransactionEvent", e) for e in events]

    record = await only_record_of(csms, station.station_id)
    assert [answer[0] for answer in answers] == [3, 3, 3, 3]
    assert record.state == "Finished"
    assert record.energy_wh == 2500
    assert record.flags == []
    assert record.complete


async def test_a_gap_in_sequence_numbers_flags_the_record_incomplete(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    now = clock.now()

    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        for event in (
            transaction_event("Started", 0, at=now, wh=1000),
            transaction_event("Ended", 2, at=now + timedelta(minutes=2), wh=3000),
        ):
            await send_call(socket, "TransactionEvent", event)

    record = await only_record_of(csms, station.station_id)
    assert record.state == "Finished"
    assert "sequence_gap" in record.flags
    assert not record.complete


async def test_a_filled_sequence_gap_unflags_the_record(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    now = clock.now()

    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        for event in (
            transaction_event("Started", 0, at=now, wh=1000),
            transaction_event("Ended", 2, at=now + timedelta(minutes=2), wh=3000),
            transaction_event("Updated", 1, at=now + timedelta(minutes=1), wh=2000),
        ):
            await send_call(socket, "TransactionEvent", event)

    record = await only_record_of(csms, station.station_id)
    assert "sequence_gap" not in record.flags
    assert record.complete


async def test_mark_complete_makes_a_record_with_a_gap_complete(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    now = clock.now()
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        for event in (
            transaction_event("Started", 0, at=now, wh=1000),
            transaction_event("Ended", 2, at=now + timedelta(minutes=2), wh=3000),
        ):
            await send_call(socket, "TransactionEvent", event)

    marked = await csms.charging.mark_complete(
        station.station_id, "TX-1", "station reports nothing queued"
    )

    record = await only_record_of(csms, station.station_id)
    assert marked.complete
    assert record.complete
    assert "sequence_gap" in record.flags


async def test_a_repeated_16_stop_is_journaled_as_duplicate_and_not_applied(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    now = clock.now()

    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)
        started = await send_call(socket, "StartTransaction", start_transaction(at=now))
        transaction_id = started[2]["transactionId"]
        stop = stop_transaction(
            transaction_id, at=now + timedelta(minutes=5), meter_stop=4000
        )
        first = await send_call(socket, "StopTransaction", stop, message_id="s-1")
        again = await send_call(
            socket,
            "StopTransaction",
            {**stop, "meterStop": 9000},
            message_id="s-2",
        )

    record = await only_record_of(csms, station.station_id)
    rows = await journal_of(csms, station.station_id)
    assert first == [3, "s-1", {}]
    assert again == [3, "s-2", {}]
    assert record.meter_stop_wh == 4000
    assert record.energy_wh == 3000
    assert [(r.message_id, r.duplicate) for r in rows[1:]] == [
        ("s-1", False),
        ("s-2", True),
    ]


async def test_a_repeated_16_start_is_journaled_as_duplicate(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    start = start_transaction(at=clock.now())

    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)
        first = await send_call(socket, "StartTransaction", start, message_id="a-1")
        again = await send_call(socket, "StartTransaction", start, message_id="a-2")

    await only_record_of(csms, station.station_id)
    rows = await journal_of(csms, station.station_id)
    assert again[2]["transactionId"] == first[2]["transactionId"]
    assert [(r.message_id, r.duplicate) for r in rows] == [
        ("a-1", False),
        ("a-2", True),
    ]
