"""A customer sees and stops only their own charges; their records list is
theirs alone, newest first, a page at a time."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from csms.simulator.station import V16, V201, run_station

from conftest import RegisteredStation
from support.charging import (
    FAST,
    PROBLEM,
    RECORDS,
    SESSIONS,
    start_charge,
    wait_for_session,
)
from support.clock import ManualClock
from support.customers import register_customer

VERSIONS = pytest.mark.parametrize("version", [V16, V201])
REJECTS = replace(FAST, accept_remote_start=False)


@VERSIONS
async def test_another_customers_session_is_not_found(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    owner = await register_customer(anonymous_http, "owner@example.com")
    someone = await register_customer(anonymous_http, "someone@example.com")
    car_id = await owner.add_car()

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ):
        record = await start_charge(owner, car_id=car_id, station_id=station.station_id)
        await wait_for_session(owner, record["id"], state="Started")

        answer = await someone.get(f"{SESSIONS}/{record['id']}")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Charging session not found"


@VERSIONS
async def test_another_customers_stop_is_not_found(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    owner = await register_customer(anonymous_http, "owner@example.com")
    someone = await register_customer(anonymous_http, "someone@example.com")
    car_id = await owner.add_car()

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ):
        record = await start_charge(owner, car_id=car_id, station_id=station.station_id)
        await wait_for_session(owner, record["id"], state="Started")

        answer = await someone.post(f"{SESSIONS}/{record['id']}/stop")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM


async def test_another_customers_records_never_appear_in_my_list(
    ocpp_url: str, station: RegisteredStation, anonymous_http: httpx.AsyncClient
) -> None:
    mine = await register_customer(anonymous_http, "me@example.com")
    theirs = await register_customer(anonymous_http, "them@example.com")
    my_car_id = await mine.add_car()
    their_car_id = await theirs.add_car()

    async with run_station(
        ocpp_url, station.station_id, station.password, version=V16, options=REJECTS
    ):
        my_record = await start_charge(
            mine, car_id=my_car_id, station_id=station.station_id
        )
        their_record = await start_charge(
            theirs, car_id=their_car_id, station_id=station.station_id
        )

    listed = await mine.get(RECORDS)

    assert listed.status_code == 200, listed.text
    ids = [item["id"] for item in listed.json()["items"]]
    assert ids == [my_record["id"]]
    assert their_record["id"] not in ids


async def test_records_are_listed_newest_first_a_page_at_a_time(
    clock: ManualClock,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    created = []

    # Refused starts: a record each, and the connector free for the next.
    async with run_station(
        ocpp_url, station.station_id, station.password, version=V16, options=REJECTS
    ):
        for _ in range(3):
            record = await start_charge(
                customer, car_id=car_id, station_id=station.station_id
            )
            created.append(record["id"])
            clock.advance(1)

    seen = []
    before = None
    for _ in range(4):
        params = {"limit": 1} | ({"before": before} if before else {})
        page = (await customer.get(RECORDS, params=params)).json()
        seen += [item["id"] for item in page["items"]]
        before = page["next_before"]
        if before is None:
            break

    assert seen == list(reversed(created))
    assert before is None
