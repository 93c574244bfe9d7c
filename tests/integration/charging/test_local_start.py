"""A charge started at the station with an RFID card, without the app: the
record is the card owner's, and a card nobody knows is recorded all the same."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from ocpp.v16 import call as call16

from csms.app import Csms
from csms.charging.journal import Received
from csms.charging.service import ChargingService
from csms.customers.service import CustomerService
from csms.db.engine import create_engine, create_sessionmaker
from csms.ocpp.framing import OcppVersion
from csms.settings import Settings
from csms.simulator.station import V16, V201, run_station

from conftest import RegisteredStation
from support.charging import (
    FAST,
    RECORDS,
    StationEvents,
    operator_records,
)
from support.customers import register_customer
from support.polling import eventually
from support.station_calls import boot
from support.stations import connected_station

VERSIONS = pytest.mark.parametrize("version", [V16, V201])
# 1.6 idTag is a CiString20.
UNKNOWN_CARD = "UNKNOWN-CARD-0001"


@VERSIONS
async def test_a_local_start_creates_a_started_record_for_the_cards_owner(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    await customer.add_car()

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        charge = await simulated.plug_in_and_charge(customer.id_token, 2)

        listed = (await customer.get(RECORDS)).json()["items"]

    [record] = listed
    assert record["state"] == "Started"
    assert record["station_id"] == station.station_id
    # 1.6: connector 2; 2.0.1: EVSE 2 (its connector 1).
    assert record["evse_id"] == 2
    assert record["transaction_id"] == str(charge.transaction_id)
    assert record["flags"] == []


@VERSIONS
async def test_a_local_start_sets_the_car_when_the_customer_has_exactly_one(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        await simulated.plug_in_and_charge(customer.id_token)

        [record] = (await customer.get(RECORDS)).json()["items"]

    assert record["car_id"] == car_id


@VERSIONS
async def test_a_local_start_leaves_the_car_empty_when_the_customer_has_two(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    await customer.add_car()
    await customer.add_car(plate="B-EV 2")

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        await simulated.plug_in_and_charge(customer.id_token)

        [record] = (await customer.get(RECORDS)).json()["items"]

    assert record["car_id"] is None


@pytest.mark.parametrize(("version", "told"), [(V16, "Invalid"), (V201, "Unknown")])
async def test_a_station_is_told_an_unknown_card_is_not_authorized(
    version: str, told: str, ocpp_url: str, station: RegisteredStation
) -> None:
    events = StationEvents()

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        simulated.on_event = events
        await simulated.plug_in_and_charge(UNKNOWN_CARD)

    [answered] = events.of("start_answered")
    assert answered["status"] == told
    assert events.of("started") == []


@VERSIONS
async def test_a_charge_on_an_unknown_card_is_recorded_flagged_and_deauthorized(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    operator_http: httpx.AsyncClient,
) -> None:
    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        charge = await simulated.plug_in_and_charge(UNKNOWN_CARD)

        async def ended() -> bool:
            records = await operator_records(operator_http, station.station_id)
            return bool(records) and records[0]["state"] == "Finished"

        await eventually(ended)
        [record] = await operator_records(operator_http, station.station_id)

    assert record["flags"] == ["unauthorized_token"]
    assert record["id_token"] == UNKNOWN_CARD
    assert record["customer_id"] is None
    assert record["car_id"] is None
    assert record["transaction_id"] == str(charge.transaction_id)
    assert record["stop_reason"] == "DeAuthorized"


async def test_a_repeated_16_start_transaction_gets_the_same_transaction_id(
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    start = call16.StartTransaction(
        connector_id=1,
        id_tag=customer.id_token,
        meter_start=1000,
        timestamp="2024-05-01T12:00:00.000Z",
    )

    async with connected_station(
        ocpp_url, station.station_id, station.password, version=V16
    ) as client:
        await boot(client)
        first = await client.call(start)
        # The station lost our answer and sends the same message again.
        again = await client.call(start)

    assert again.transaction_id == first.transaction_id
    listed = (await customer.get(RECORDS)).json()["items"]
    assert [record["transaction_id"] for record in listed] == [
        str(first.transaction_id)
    ]


async def test_local_starts_need_one_connection_each_however_many_at_once(
    csms: Csms,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    settings: Settings,
) -> None:
    # A start holds one connection for its transaction; had it asked for a
    # second one meanwhile, starts as many as the pool's connections would
    # each hold one and wait for ever on the next. One connection for all:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    engine = create_engine(
        settings.database_url, pool_size=1, max_overflow=0, pool_timeout=5
    )
    sessionmaker = create_sessionmaker(engine)
    charging = ChargingService(
        sessionmaker,
        clock=csms.clock,
        customers=CustomerService(sessionmaker, clock=csms.clock, settings=settings),
        stations=csms.stations,
        commands=csms.gateway,
        start_timeout=timedelta(seconds=60),
        call_timeout=timedelta(seconds=5),
    )
    now = datetime.now(UTC)

    async def start(connector_id: int) -> int:
        outcome = await charging.start_transaction_16(
            station.station_id,
            connector_id=connector_id,
            id_tag=customer.id_token,
            meter_start=0,
            timestamp=now,
            received=Received(
                message_id=f"start-{connector_id}",
                version=OcppVersion.V16,
                payload={"connectorId": connector_id},
                received_at=now,
            ),
        )
        return outcome.transaction_id

    try:
        async with asyncio.timeout(20):
            transaction_ids = await asyncio.gather(*(start(n) for n in range(1, 7)))
    finally:
        await engine.dispose()

    assert len(set(transaction_ids)) == 6
    listed = (await customer.get(RECORDS)).json()["items"]
    assert sorted(record["evse_id"] for record in listed) == [1, 2, 3, 4, 5, 6]
    assert {record["car_id"] for record in listed} == {car_id}
