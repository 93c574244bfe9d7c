"""Charging through the HTTP API and simulated stations: start, follow, list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from csms.simulator.station import SimulatorOptions

from support.customers import Customer
from support.polling import eventually

SESSIONS = "/api/v1/charging-sessions"
RECORDS = "/api/v1/charge-detail-records"
OPERATOR_RECORDS = "/api/v1/operator/charge-detail-records"
PROBLEM = "application/problem+json"

# A minute of simulated time every 0.2 s: an 11 kW charge adds ~183 Wh a tick.
FAST = SimulatorOptions(meter_interval=60, time_factor=300)
# No meter value for a minute of real time: the test sends its own.
QUIET = SimulatorOptions(meter_interval=3600, time_factor=60)


@dataclass
class StationEvents:
    """What a simulated station did, in order, from its ``on_event`` hook."""

    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, event: str, details: dict[str, Any]) -> None:
        self.seen.append((event, details))

    def of(self, event: str) -> list[dict[str, Any]]:
        return [details for name, details in self.seen if name == event]


async def request_start(
    customer: Customer,
    *,
    car_id: int,
    station_id: str,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    return await customer.post(
        SESSIONS,
        json={"car_id": car_id, "station_id": station_id, **fields},
        headers=headers or {},
    )


async def start_charge(
    customer: Customer, *, car_id: int, station_id: str, **fields: Any
) -> dict[str, Any]:
    """Start a charge and return the 202's record."""
    answer = await request_start(
        customer, car_id=car_id, station_id=station_id, **fields
    )
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def get_session(customer: Customer, record_id: str) -> dict[str, Any]:
    answer = await customer.get(f"{SESSIONS}/{record_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def wait_for_session(
    customer: Customer, record_id: str, *, state: str, timeout: float = 15.0
) -> dict[str, Any]:
    """Poll the session until it reaches ``state``; return it then.

    Generous by default: after a crash the station's queue arrives only once it
    has reconnected, and a loaded CI machine makes that slow.
    """
    last: dict[str, Any] = {}

    async def reached() -> bool:
        last.update(await get_session(customer, record_id))
        return last["state"] == state

    await eventually(reached, timeout=timeout)
    return last


async def station_state(http: httpx.AsyncClient, station_id: str) -> str:
    answer = await http.get(f"/api/v1/operator/stations/{station_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["state"])


async def wait_for_station_state(
    http: httpx.AsyncClient, station_id: str, state: str
) -> None:
    async def reached() -> bool:
        return await station_state(http, station_id) == state

    await eventually(reached)


async def operator_records(
    http: httpx.AsyncClient, station_id: str
) -> list[dict[str, Any]]:
    answer = await http.get(OPERATOR_RECORDS, params={"station_id": station_id})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items
