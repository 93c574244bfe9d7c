"""Stopping a charge: from the app (only a started charge of one's own) and at
the station itself."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from csms.simulator.station import V16, V201, run_station

from conftest import RegisteredStation
from support.charging import (
    FAST,
    PROBLEM,
    SESSIONS,
    start_charge,
    station_state,
    wait_for_session,
    wait_for_station_state,
)
from support.customers import register_customer
from support.polling import eventually

VERSIONS = pytest.mark.parametrize("version", [V16, V201])
NEVER_STARTS = replace(FAST, start_transactions=False)


@VERSIONS
async def test_stopping_a_pending_charge_is_a_409_problem(
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
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        answer = await customer.post(f"{SESSIONS}/{record['id']}/stop")

    assert record["state"] == "Pending"
    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Charge cannot be stopped"


@VERSIONS
async def test_stopping_a_finished_charge_is_a_409_problem(
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
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        await wait_for_session(customer, record["id"], state="Started")
        first = await customer.post(f"{SESSIONS}/{record['id']}/stop")
        assert first.status_code == 202, first.text
        await wait_for_session(customer, record["id"], state="Finished")

        again = await customer.post(f"{SESSIONS}/{record['id']}/stop")

    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert again.json()["title"] == "Charge cannot be stopped"


@VERSIONS
async def test_stopping_another_customers_charge_is_a_404_and_stops_nothing(
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
        still = await wait_for_session(owner, record["id"], state="Started")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Charging session not found"
    assert still["stopped_at"] is None


@VERSIONS
async def test_a_charge_stopped_at_the_station_finishes_with_reason_local(
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

        async def some_energy() -> bool:
            return simulated.meter_wh[started["connector_id"]] > 300

        await eventually(some_energy)
        await simulated.stop_locally(started["connector_id"])
        meter_at_stop = round(simulated.meter_wh[started["connector_id"]])
        finished = await wait_for_session(customer, record["id"], state="Finished")

    assert finished["stop_reason"] == "Local"
    assert finished["meter_stop_wh"] == meter_at_stop
    assert finished["energy_wh"] == meter_at_stop - finished["meter_start_wh"]
    assert finished["energy_wh"] > 300


@VERSIONS
async def test_the_station_is_available_after_a_charge_stopped_at_the_station(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
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
        await wait_for_station_state(operator_http, station.station_id, "Charging")

        await simulated.stop_locally(started["connector_id"])

        await wait_for_station_state(operator_http, station.station_id, "Available")
        assert await station_state(operator_http, station.station_id) == "Available"
