"""Every transaction message is journaled with its effect, before its answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from csms.app import Csms
from csms.charging.journal import Received
from csms.ocpp.framing import OcppVersion

from conftest import RegisteredStation
from support.clock import ManualClock
from support.frames import boot, raw_station, send_call
from support.stations import V16, V201
from support.transactions import (
    energy_16,
    journal_of,
    records_of,
    start_transaction,
    stop_transaction,
    transaction_event,
)


async def test_a_16_start_transaction_is_journaled_with_its_record(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    payload = start_transaction(at=clock.now())

    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)
        answer = await send_call(
            socket, "StartTransaction", payload, message_id="start-1"
        )

    [row] = await journal_of(csms, station.station_id)
    [record] = await records_of(csms, station.station_id)
    assert answer[0] == 3
    assert row.action == "StartTransaction"
    assert row.ocpp_version == "ocpp1.6"
    assert row.message_id == "start-1"
    assert row.transaction_id == str(answer[2]["transactionId"])
    assert row.record_id == record.id
    assert row.payload == payload
    assert row.message_time == clock.now().replace(
        microsecond=clock.now().microsecond // 1000 * 1000
    )
    assert row.received_at == clock.now()
    assert row.duplicate is False
    assert row.flags == []


async def test_16_meter_values_and_stop_are_journaled_against_the_record(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    now = clock.now()

    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)
        started = await send_call(socket, "StartTransaction", start_transaction(at=now))
        transaction_id = started[2]["transactionId"]
        await send_call(
            socket,
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": transaction_id,
                "meterValue": energy_16(1500, now + timedelta(minutes=1)),
            },
            message_id="meter-1",
        )
        await send_call(
            socket,
            "StopTransaction",
            stop_transaction(
                transaction_id, at=now + timedelta(minutes=2), meter_stop=2000
            ),
            message_id="stop-1",
        )

    [record] = await records_of(csms, station.station_id)
    rows = await journal_of(csms, station.station_id)
    assert [(r.action, r.message_id) for r in rows[1:]] == [
        ("MeterValues", "meter-1"),
        ("StopTransaction", "stop-1"),
    ]
    assert {r.record_id for r in rows} == {record.id}
    assert {r.transaction_id for r in rows} == {str(transaction_id)}
    assert record.energy_wh == 1000


async def test_a_201_transaction_event_is_journaled_with_its_sequence_number(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    payload = transaction_event("Started", 0, at=clock.now(), wh=1000)

    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        answer = await send_call(
            socket, "TransactionEvent", payload, message_id="event-0"
        )

    [row] = await journal_of(csms, station.station_id)
    [record] = await records_of(csms, station.station_id)
    assert answer == [3, "event-0", {}]
    assert (row.action, row.ocpp_version, row.message_id) == (
        "TransactionEvent",
        "ocpp2.0.1",
        "event-0",
    )
    assert (row.transaction_id, row.seq_no, row.event_type) == ("TX-1", 0, "Started")
    assert row.record_id == record.id
    assert row.payload == payload


async def test_a_failed_effect_leaves_no_journal_row(
    csms: Csms, clock: ManualClock
) -> None:
    # No such station: the record's foreign key fails at commit, and the
    # journal row written in the same transaction must go with it.
    payload = transaction_event("Started", 0, at=clock.now(), wh=1000)
    received = Received(
        message_id="event-0",
        version=OcppVersion.V201,
        payload=payload,
        received_at=clock.now(),
    )

    with pytest.raises(IntegrityError):
        await csms.charging.transaction_event_201(
            "NO-SUCH-STATION", payload, received=received
        )

    assert await journal_of(csms, "NO-SUCH-STATION") == []
