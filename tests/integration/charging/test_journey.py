"""The customer's whole journey, for both OCPP versions, on both databases:
register, add a car, start a charge at a simulated station, watch the energy
rise, stop it, and find the Charge Detail Record."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from csms.app import Csms
from csms.simulator.station import V16, V201, SimulatorOptions, run_station

from conftest import RegisteredStation
from support.customers import Customer, register_customer
from support.polling import eventually

# A minute of simulated time every 0.2 s: an 11 kW charge adds ~183 Wh a tick.
FAST = SimulatorOptions(meter_interval=60, time_factor=300)


async def _session(customer: Customer, record_id: str) -> dict[str, Any]:
    answer = await customer.get(f"/api/v1/charging-sessions/{record_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _station_state(http: httpx.AsyncClient, station_id: str) -> str:
    answer = await http.get(f"/api/v1/operator/stations/{station_id}")
    return str(answer.json()["state"])


@pytest.mark.parametrize("version", [V16, V201])
async def test_a_customer_charges_a_car_from_start_to_record(
    version: str,
    csms: Csms,
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
        assert await _station_state(operator_http, station.station_id) == "Available"

        answer = await customer.post(
            "/api/v1/charging-sessions",
            json={"car_id": car_id, "station_id": station.station_id},
        )
        assert answer.status_code == 202, answer.text
        record = answer.json()
        assert record["state"] in {"Pending", "Started"}
        assert record["car_id"] == car_id

        async def started() -> bool:
            return (await _session(customer, record["id"]))["state"] == "Started"

        await eventually(started)

        async def charging() -> bool:
            return await _station_state(operator_http, station.station_id) == "Charging"

        await eventually(charging)

        async def energy_rises() -> bool:
            return ((await _session(customer, record["id"]))["energy_wh"] or 0) > 300

        await eventually(energy_rises)

        stop = await customer.post(f"/api/v1/charging-sessions/{record['id']}/stop")
        assert stop.status_code == 202, stop.text

        async def finished() -> bool:
            return (await _session(customer, record["id"]))["state"] == "Finished"

        await eventually(finished)
        await simulated.finished.wait()

        async def available() -> bool:
            return (
                await _station_state(operator_http, station.station_id) == "Available"
            )

        await eventually(available)

    final = await _session(customer, record["id"])
    assert final["stop_reason"] == "Remote"
    assert final["meter_stop_wh"] == round(simulated.meter_wh[final["connector_id"]])
    assert final["energy_wh"] == final["meter_stop_wh"] - final["meter_start_wh"]
    assert final["energy_wh"] > 300
    assert final["transaction_id"]
    assert final["stopped_at"] >= final["started_at"]

    listed = (await customer.get("/api/v1/charge-detail-records")).json()
    assert [item["id"] for item in listed["items"]] == [record["id"]]

    operator_view = (
        await operator_http.get(
            "/api/v1/operator/charge-detail-records",
            params={"station_id": station.station_id},
        )
    ).json()
    assert operator_view["items"][0]["customer_id"] == customer.customer_id
    assert operator_view["items"][0]["id_token"] == customer.id_token
