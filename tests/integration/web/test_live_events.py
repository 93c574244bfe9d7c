"""The operator's live stream: Server-Sent Events at /api/v1/operator/events,
fed by what the services commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from csms.app import Csms
from csms.simulator.station import run_station

from conftest import RegisteredStation
from support.charging import (
    FAST,
    start_charge,
    wait_for_session,
    wait_for_station_state,
)
from support.customers import register_customer
from support.polling import eventually

EVENTS = "/api/v1/operator/events"
Received = list[tuple[str, dict[str, Any]]]


async def _read_until(
    lines: Any, received: Received, done: Callable[[Received], bool]
) -> None:
    name = "message"
    async with asyncio.timeout(10):
        async for line in lines:
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                received.append((name, json.loads(line.removeprefix("data:"))))
                if done(received):
                    return


def _states_of(received: Received, station_id: str) -> list[str]:
    return [
        data["state"]
        for name, data in received
        if name == "station.changed" and data["station_id"] == station_id
    ]


async def test_the_stream_tells_a_station_went_available_then_unavailable(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    received: Received = []

    async with operator_http.stream("GET", EVENTS) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        async with run_station(ocpp_url, station.station_id, station.password):
            await _read_until(
                lines,
                received,
                lambda got: "Available" in _states_of(got, station.station_id),
            )
        await _read_until(
            lines,
            received,
            lambda got: _states_of(got, station.station_id)[-1] == "Unavailable",
        )

    changes = [data for name, data in received if name == "station.changed"]
    assert changes[-1] == {
        "station_id": station.station_id,
        "state": "Unavailable",
        "online": False,
        "connectors": [
            {"evse_id": 0, "connector_id": 0, "status": "Available"},
            {"evse_id": 1, "connector_id": 1, "status": "Available"},
            {"evse_id": 2, "connector_id": 2, "status": "Available"},
        ],
    }


async def test_the_stream_follows_a_charge_from_pending_to_finished(
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()
    received: Received = []

    async with (
        run_station(ocpp_url, station.station_id, station.password, options=FAST),
        operator_http.stream("GET", EVENTS) as response,
    ):
        lines = response.aiter_lines()
        await anext(lines)
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        await wait_for_session(customer, record["id"], state="Started")
        await wait_for_station_state(operator_http, station.station_id, "Charging")
        await customer.post(f"/api/v1/charging-sessions/{record['id']}/stop")
        await _read_until(
            lines,
            received,
            lambda got: any(
                name == "charge.changed" and data["state"] == "Finished"
                for name, data in got
            ),
        )

    charge_states = [
        data["state"] for name, data in received if name == "charge.changed"
    ]
    assert charge_states[0] == "Pending"
    assert "Started" in charge_states
    assert charge_states[-1] == "Finished"
    assert {
        data["record_id"] for name, data in received if name == "charge.changed"
    } == {record["id"]}
    # No token or customer in what every operator page receives.
    assert all("id_token" not in data for _, data in received)
    assert "Charging" in _states_of(received, station.station_id)


async def test_the_stream_needs_an_operator(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    answer = await anonymous_http.get(EVENTS)

    assert answer.status_code == 401


async def test_a_page_that_leaves_is_unsubscribed(
    csms: Csms, operator_http: httpx.AsyncClient
) -> None:
    async with operator_http.stream("GET", EVENTS) as response:
        await anext(response.aiter_lines())
        assert csms.events.subscriber_count == 1

    async def unsubscribed() -> bool:
        return csms.events.subscriber_count == 0

    await eventually(unsubscribed)


async def test_an_open_stream_does_not_hold_up_shutdown(
    csms: Csms, operator_http: httpx.AsyncClient
) -> None:
    async with operator_http.stream("GET", EVENTS) as response:
        lines = response.aiter_lines()
        await anext(lines)
        async with asyncio.timeout(4):
            await csms.stop()
        # The stream ended with the server, right after its greeting.
        rest = [line async for line in lines]

    assert rest == [": connected", ""]
