"""Operator commands to a connected station — reset, unlock, availability —
and the operator's remote stop, against real station clients over sockets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from csms.simulator.station import V16, V201, run_station

from conftest import RegisteredStation
from support.charging import FAST, PROBLEM, start_charge, wait_for_session
from support.customers import register_customer
from support.station_calls import boot
from support.stations import connected_station

STATIONS = "/api/v1/operator/stations"


class Station16(ChargePoint16):  # type: ignore[misc]
    """Answers the operator's commands and remembers what it was asked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, dict[str, Any]]] = []

    @on(Action16.reset)
    def on_reset(self, **fields: Any) -> Any:
        self.asked.append(("Reset", fields))
        return result16.Reset(status="Accepted")

    @on(Action16.unlock_connector)
    def on_unlock(self, **fields: Any) -> Any:
        self.asked.append(("UnlockConnector", fields))
        return result16.UnlockConnector(status="Unlocked")

    @on(Action16.change_availability)
    def on_availability(self, **fields: Any) -> Any:
        self.asked.append(("ChangeAvailability", fields))
        return result16.ChangeAvailability(status="Scheduled")


class Station201(ChargePoint201):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, dict[str, Any]]] = []

    @on(Action201.reset)
    def on_reset(self, **fields: Any) -> Any:
        self.asked.append(("Reset", fields))
        return result201.Reset(status="Rejected")

    @on(Action201.unlock_connector)
    def on_unlock(self, **fields: Any) -> Any:
        self.asked.append(("UnlockConnector", fields))
        return result201.UnlockConnector(status="UnknownConnector")

    @on(Action201.change_availability)
    def on_availability(self, **fields: Any) -> Any:
        self.asked.append(("ChangeAvailability", fields))
        return result201.ChangeAvailability(status="Accepted")


async def test_a_hard_reset_reaches_a_16_station_as_hard(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password, charge_point_class=Station16
    ) as client:
        await boot(client)
        answer = await operator_http.post(
            f"{STATIONS}/{station.station_id}/reset", json={"type": "hard"}
        )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"action": "Reset", "status": "Accepted"}
    assert client.charge_point.asked == [("Reset", {"type": "Hard"})]


async def test_a_soft_reset_reaches_a_201_station_as_on_idle(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=V201,
        charge_point_class=Station201,
    ) as client:
        await boot(client)
        answer = await operator_http.post(
            f"{STATIONS}/{station.station_id}/reset", json={"type": "soft"}
        )

    # The station's refusal is an answer, not an error.
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "Rejected"
    assert client.charge_point.asked == [("Reset", {"type": "OnIdle"})]


@pytest.mark.parametrize(
    ("version", "charge_point_class", "expected_request", "expected_status"),
    [
        (V16, Station16, {"connector_id": 2}, "Unlocked"),
        (V201, Station201, {"evse_id": 2, "connector_id": 1}, "UnknownConnector"),
    ],
)
async def test_unlock_connector_names_the_connector_as_each_version_does(
    version: str,
    charge_point_class: type[Any],
    expected_request: dict[str, Any],
    expected_status: str,
    ocpp_url: str,
    station: RegisteredStation,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=version,
        charge_point_class=charge_point_class,
    ) as client:
        await boot(client)
        answer = await operator_http.post(
            f"{STATIONS}/{station.station_id}/unlock-connector",
            json={"evse_id": 2, "connector_id": 1 if version == V201 else 2},
        )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"action": "UnlockConnector", "status": expected_status}
    assert client.charge_point.asked == [("UnlockConnector", expected_request)]


@pytest.mark.parametrize(
    ("version", "charge_point_class", "body", "expected_request"),
    [
        (
            V16,
            Station16,
            {"availability": "inoperative"},
            {"connector_id": 0, "type": "Inoperative"},
        ),
        (
            V16,
            Station16,
            {"availability": "operative", "evse_id": 1},
            {"connector_id": 1, "type": "Operative"},
        ),
        (
            V201,
            Station201,
            {"availability": "inoperative"},
            {"operational_status": "Inoperative"},
        ),
        (
            V201,
            Station201,
            {"availability": "operative", "evse_id": 1, "connector_id": 1},
            {"operational_status": "Operative", "evse": {"id": 1, "connector_id": 1}},
        ),
    ],
)
async def test_change_availability_targets_the_station_or_one_evse(
    version: str,
    charge_point_class: type[Any],
    body: dict[str, Any],
    expected_request: dict[str, Any],
    ocpp_url: str,
    station: RegisteredStation,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(
        ocpp_url,
        station.station_id,
        station.password,
        version=version,
        charge_point_class=charge_point_class,
    ) as client:
        await boot(client)
        answer = await operator_http.post(
            f"{STATIONS}/{station.station_id}/availability", json=body
        )

    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == "ChangeAvailability"
    assert client.charge_point.asked == [("ChangeAvailability", expected_request)]


async def test_a_command_to_an_offline_station_is_a_409_problem(
    station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    answer = await operator_http.post(
        f"{STATIONS}/{station.station_id}/reset", json={"type": "soft"}
    )

    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Station not connected"


async def test_a_command_to_an_unknown_station_is_a_404_problem(
    csms: object, operator_http: httpx.AsyncClient
) -> None:
    answer = await operator_http.post(f"{STATIONS}/NOPE/reset", json={})

    assert answer.status_code == 404
    assert answer.json()["title"] == "Station not found"


async def test_a_station_answering_with_a_callerror_is_a_409_problem(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    # The plain charge point has no Reset handler: it answers NotImplemented.
    async with connected_station(
        ocpp_url, station.station_id, station.password
    ) as client:
        await boot(client)
        answer = await operator_http.post(
            f"{STATIONS}/{station.station_id}/reset", json={"type": "soft"}
        )

    assert answer.status_code == 409
    assert answer.json()["title"] == "Station could not do it"
    assert "NotImplemented" in answer.json()["detail"]


async def test_commands_need_an_operator(
    station: RegisteredStation, anonymous_http: httpx.AsyncClient
) -> None:
    answer = await anonymous_http.post(
        f"{STATIONS}/{station.station_id}/reset", json={"type": "hard"}
    )

    assert answer.status_code == 401


async def test_a_command_is_kept_in_the_station_event_log(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password, charge_point_class=Station16
    ) as client:
        await boot(client)
        await operator_http.post(
            f"{STATIONS}/{station.station_id}/reset", json={"type": "soft"}
        )

    answer = await operator_http.get(f"{STATIONS}/{station.station_id}/events")

    assert answer.status_code == 200, answer.text
    events = answer.json()
    assert [event["kind"] for event in events] == ["operator_command", "boot"]
    assert events[0]["details"] == {
        "action": "Reset",
        "request": {"type": "Soft"},
        "status": "Accepted",
        "by": "bootstrap",
    }


async def test_the_events_of_an_unknown_station_are_a_404(
    csms: object, operator_http: httpx.AsyncClient
) -> None:
    answer = await operator_http.get(f"{STATIONS}/NOPE/events")

    assert answer.status_code == 404


@pytest.mark.parametrize("version", [V16, V201])
async def test_an_operator_stops_a_customers_charge(
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
    ):
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        await wait_for_session(customer, record["id"], state="Started")
        answer = await operator_http.post(
            f"/api/v1/operator/charging-sessions/{record['id']}/stop"
        )
        finished = await wait_for_session(customer, record["id"], state="Finished")

    assert answer.status_code == 202, answer.text
    assert answer.json()["customer_id"] == customer.customer_id
    assert finished["stop_reason"] == "Remote"


async def test_an_operator_cannot_stop_a_record_that_does_not_exist(
    csms: object, operator_http: httpx.AsyncClient
) -> None:
    answer = await operator_http.post("/api/v1/operator/charging-sessions/nope/stop")

    assert answer.status_code == 404
    assert answer.json()["title"] == "Charge Detail Record not found"
