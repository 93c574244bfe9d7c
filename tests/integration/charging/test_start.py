"""Starting a charge from the app: the Pending record, the remote start the
station receives, and every way a start can be refused or fail."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from csms.app import Csms
from csms.charging.ids import MAX_TRANSACTION_ID_16
from csms.simulator.station import V16, V201, run_station

from conftest import RegisteredStation
from support.charging import (
    FAST,
    PROBLEM,
    StationEvents,
    get_session,
    request_start,
    start_charge,
    wait_for_session,
)
from support.clock import ManualClock
from support.customers import register_customer

VERSIONS = pytest.mark.parametrize("version", [V16, V201])
NEVER_STARTS = replace(FAST, start_transactions=False)
REJECTS = replace(FAST, accept_remote_start=False)
ONE_CONNECTOR = replace(FAST, connectors=1)


@VERSIONS
async def test_the_202_record_is_pending_with_car_station_and_connector(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()

    async with run_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=version,
        options=NEVER_STARTS,
    ):
        answer = await request_start(
            customer, car_id=car_id, station_id=station.station_id, connector_id=1
        )

    assert answer.status_code == 202, answer.text
    record = answer.json()
    assert record["state"] == "Pending"
    assert record["car_id"] == car_id
    assert record["station_id"] == station.station_id
    assert record["connector_id"] == 1
    assert record["evse_id"] == 1
    assert record["transaction_id"] is None
    assert record["failure_reason"] is None


async def test_a_16_station_receives_the_customers_id_tag(
    ocpp_url: str, station: RegisteredStation, anonymous_http: httpx.AsyncClient
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    events = StationEvents()

    async with run_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=V16,
        options=NEVER_STARTS,
    ) as simulated:
        simulated.on_event = events
        await start_charge(customer, car_id=car_id, station_id=station.station_id)

    [remote_start] = events.of("remote_start")
    assert remote_start["id_token"] == customer.id_token
    assert remote_start["connector_id"] == 1


async def test_a_201_station_receives_a_central_token_and_a_remote_start_id(
    ocpp_url: str, station: RegisteredStation, anonymous_http: httpx.AsyncClient
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    events = StationEvents()

    async with run_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=V201,
        options=NEVER_STARTS,
    ) as simulated:
        simulated.on_event = events
        await start_charge(customer, car_id=car_id, station_id=station.station_id)

    [remote_start] = events.of("remote_start")
    assert remote_start["id_token"] == {
        "id_token": customer.id_token,
        "type": "Central",
    }
    assert isinstance(remote_start["remote_start_id"], int)
    assert remote_start["evse_id"] == 1


@VERSIONS
async def test_the_record_starts_with_the_stations_transaction_id(
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
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        started = await wait_for_session(customer, record["id"], state="Started")
        # The station learns its transaction id when it reads the CSMS answer.
        await asyncio.wait_for(simulated.started.wait(), 10)
        charge = simulated.charges[started["connector_id"]]

    assert started["transaction_id"] == str(charge.transaction_id)
    assert started["started_at"] is not None
    assert started["meter_start_wh"] == 0


async def test_16_transaction_ids_are_assigned_by_the_csms_and_unrelated(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    await csms.stations.register("CP-2", password=station.password)
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    other_car_id = await customer.add_car(plate="B-EV 2")

    async with (
        run_station(
            ocpp_url, station.station_id, station.password, version=V16, options=FAST
        ),
        run_station(ocpp_url, "CP-2", station.password, version=V16, options=FAST),
    ):
        first = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        second = await start_charge(customer, car_id=other_car_id, station_id="CP-2")
        first = await wait_for_session(customer, first["id"], state="Started")
        second = await wait_for_session(customer, second["id"], state="Started")

    ids = [int(first["transaction_id"]), int(second["transaction_id"])]
    assert all(1 <= value <= MAX_TRANSACTION_ID_16 for value in ids)
    # Not a counter: one station's ids tell nothing of another's.
    assert abs(ids[0] - ids[1]) > 1


@VERSIONS
async def test_a_station_that_refuses_the_start_fails_the_record_with_a_reason(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()

    async with run_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=version,
        options=REJECTS,
    ):
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )

    assert record["state"] == "Failed"
    assert record["failure_reason"] == "The station refused to start the charge."
    assert (await get_session(customer, record["id"]))["state"] == "Failed"


@VERSIONS
async def test_a_start_the_station_never_begins_fails_after_the_timeout(
    version: str,
    csms: Csms,
    clock: ManualClock,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()

    async with run_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=version,
        options=NEVER_STARTS,
    ):
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        assert await csms.charging.fail_overdue_starts() == 0
        assert (await get_session(customer, record["id"]))["state"] == "Pending"

        clock.advance(61)
        failed_count = await csms.charging.fail_overdue_starts()

    assert failed_count == 1
    failed = await get_session(customer, record["id"])
    assert failed["state"] == "Failed"
    assert failed["failure_reason"] == "The station did not start the charge in time."


async def test_a_station_not_connected_is_a_409_problem(
    station: RegisteredStation, anonymous_http: httpx.AsyncClient
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()

    answer = await request_start(customer, car_id=car_id, station_id=station.station_id)

    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Station unavailable"


async def test_an_unknown_station_is_a_404_problem(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()

    answer = await request_start(customer, car_id=car_id, station_id="NO-SUCH-CP")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Station not found"


@VERSIONS
async def test_another_customers_car_is_a_404_problem(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    owner = await register_customer(anonymous_http, "owner@example.com")
    someone = await register_customer(anonymous_http, "someone@example.com")
    owners_car_id = await owner.add_car()
    events = StationEvents()

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        simulated.on_event = events
        answer = await request_start(
            someone, car_id=owners_car_id, station_id=station.station_id
        )

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Car not found"
    assert events.of("remote_start") == []


@VERSIONS
async def test_a_connector_that_does_not_exist_is_a_422_problem(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ):
        answer = await request_start(
            customer, car_id=car_id, station_id=station.station_id, connector_id=9
        )

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "No such connector"


@VERSIONS
async def test_a_busy_connector_is_a_409_problem(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    other_car_id = await customer.add_car(plate="B-EV 2")

    async with run_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=version,
        options=ONE_CONNECTOR,
    ):
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        await wait_for_session(customer, record["id"], state="Started")

        answer = await request_start(
            customer, car_id=other_car_id, station_id=station.station_id
        )

    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Connector busy"


@VERSIONS
async def test_two_customers_racing_for_one_connector_get_one_202_and_one_409(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    ada = await register_customer(anonymous_http, "ada@example.com")
    bob = await register_customer(anonymous_http, "bob@example.com")
    ada_car_id = await ada.add_car()
    bob_car_id = await bob.add_car()
    events = StationEvents()

    async with run_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=version,
        options=ONE_CONNECTOR,
    ) as simulated:
        simulated.on_event = events
        answers = await asyncio.gather(
            request_start(ada, car_id=ada_car_id, station_id=station.station_id),
            request_start(bob, car_id=bob_car_id, station_id=station.station_id),
        )

    assert sorted(answer.status_code for answer in answers) == [202, 409]
    assert len(events.of("remote_start")) == 1


@VERSIONS
async def test_a_retry_with_the_same_idempotency_key_starts_only_once(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    events = StationEvents()
    key = {"Idempotency-Key": "start-7f3c"}

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        simulated.on_event = events
        first = await request_start(
            customer, car_id=car_id, station_id=station.station_id, headers=key
        )
        retry = await request_start(
            customer, car_id=car_id, station_id=station.station_id, headers=key
        )

    assert first.status_code == 202, first.text
    assert retry.status_code == 202, retry.text
    assert retry.json()["id"] == first.json()["id"]
    assert len(events.of("remote_start")) == 1


@VERSIONS
async def test_the_same_idempotency_key_for_another_car_is_a_409_problem(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    other_car_id = await customer.add_car(plate="B-EV 2")
    key = {"Idempotency-Key": "start-7f3c"}

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ):
        first = await request_start(
            customer, car_id=car_id, station_id=station.station_id, headers=key
        )
        reused = await request_start(
            customer, car_id=other_car_id, station_id=station.station_id, headers=key
        )

    assert first.status_code == 202, first.text
    assert reused.status_code == 409
    assert reused.headers["content-type"] == PROBLEM
    assert reused.json()["title"] == "Idempotency key reused"


@VERSIONS
async def test_two_identical_requests_at_once_share_one_record_and_one_start(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    events = StationEvents()
    key = {"Idempotency-Key": "start-race"}

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        simulated.on_event = events
        answers = await asyncio.gather(
            *(
                request_start(
                    customer, car_id=car_id, station_id=station.station_id, headers=key
                )
                for _ in range(2)
            )
        )

    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert len(events.of("remote_start")) == 1


@VERSIONS
async def test_one_customer_charges_two_cars_at_two_connectors_at_once(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_ids = [await customer.add_car(), await customer.add_car(plate="B-EV 2")]

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        records = await asyncio.gather(
            *(
                start_charge(
                    customer,
                    car_id=car_id,
                    station_id=station.station_id,
                    connector_id=None if version == V201 else index + 1,
                    evse_id=index + 1,
                )
                for index, car_id in enumerate(car_ids)
            )
        )
        started = [
            await wait_for_session(customer, record["id"], state="Started")
            for record in records
        ]
        charges = {
            charge.connector_id: str(charge.transaction_id)
            for charge in simulated.charges.values()
        }

    assert {record["evse_id"] for record in started} == {1, 2}
    assert {record["evse_id"]: record["transaction_id"] for record in started} == (
        charges
    )
