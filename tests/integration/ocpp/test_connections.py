"""One live connection per station: replacement, disconnects, and CSMS→station calls."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from ocpp.exceptions import GenericError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as call_result16
from ocpp.v16.enums import Action
from websockets.exceptions import InvalidStatus
from websockets.protocol import State

from csms.app import Csms
from csms.ocpp.calls import CallFailed, StationNotConnected

from conftest import RegisteredStation
from support.frames import raw_station, receive_frame
from support.polling import eventually
from support.station_calls import boot, report_status_16, station_view
from support.stations import (
    V16,
    StationClient,
    basic_auth,
    connected_station,
    open_socket,
)

MAKE_INOPERATIVE = {"connectorId": 0, "type": "Inoperative"}


class AcceptingStation(ChargePoint16):  # type: ignore[misc]
    """A 1.6 station that accepts every ChangeAvailability."""

    @on(Action.change_availability)
    async def on_change_availability(
        self, connector_id: int, **_: Any
    ) -> call_result16.ChangeAvailability:
        return call_result16.ChangeAvailability(status="Accepted")


class RefusingStation(ChargePoint16):  # type: ignore[misc]
    """A 1.6 station that answers ChangeAvailability with a CALLERROR."""

    @on(Action.change_availability)
    async def on_change_availability(self, **_: Any) -> None:
        raise GenericError(description="not today")


async def _heartbeat_works(client: StationClient) -> None:
    answer = await client.call(call16.Heartbeat())
    assert answer.current_time


async def test_second_connection_replaces_the_first(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password
    ) as first:
        await boot(first)
        async with connected_station(
            ocpp_url, station.station_id, station.password
        ) as second:
            await asyncio.wait_for(first.socket.wait_closed(), 5)
            await _heartbeat_works(second)

            view = await station_view(operator_http, station.station_id)
            events = await csms.stations.list_events(station.station_id)

    assert first.socket.close_code == 4000
    assert view["online"] is True
    assert view["state"] == "Available"
    assert [(e.kind, e.security) for e in events] == [
        ("duplicate_connection", True),
        ("boot", False),
    ]


async def test_failed_authentication_never_disturbs_the_live_connection(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password
    ) as live:
        await boot(live)

        with pytest.raises(InvalidStatus) as refused:
            await open_socket(
                f"{ocpp_url}/{station.station_id}",
                headers=basic_auth(station.station_id, "an-attackers-guess-1"),
                subprotocols=[V16],
            )

        assert refused.value.response.status_code == 401
        assert live.socket.state is State.OPEN
        assert csms.gateway.is_connected(station.station_id)
        await _heartbeat_works(live)


async def test_closing_the_replaced_socket_never_removes_its_successor(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password
    ) as first:
        await boot(first)
        async with connected_station(
            ocpp_url,
            station.station_id,
            station.password,
            charge_point_class=AcceptingStation,
        ):
            await asyncio.wait_for(first.socket.wait_closed(), 5)

            answer = await csms.gateway.call(
                station.station_id, "ChangeAvailability", MAKE_INOPERATIVE
            )
            stored = await csms.stations.get(station.station_id)

    assert answer == {"status": "Accepted"}
    assert stored.online is True


async def test_socket_closed_while_idle_makes_the_station_unavailable(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        await report_status_16(cp, 1, "Available")

    async def offline() -> bool:
        return not (await csms.stations.get(station.station_id)).online

    await eventually(offline)
    view = await station_view(operator_http, station.station_id)
    assert view["state"] == "Unavailable"
    assert view["offline_while_charging"] is False
    assert not csms.gateway.is_connected(station.station_id)


async def test_socket_closed_while_charging_keeps_the_station_charging(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        await report_status_16(cp, 1, "Charging")

    async def offline() -> bool:
        return not (await csms.stations.get(station.station_id)).online

    await eventually(offline)
    view = await station_view(operator_http, station.station_id)
    assert view["state"] == "Charging"
    assert view["online"] is False
    assert view["offline_while_charging"] is True


async def test_call_returns_the_station_answer(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    async with connected_station(
        ocpp_url,
        station.station_id,
        station.password,
        charge_point_class=AcceptingStation,
    ):
        answer = await csms.gateway.call(
            station.station_id, "ChangeAvailability", MAKE_INOPERATIVE
        )

    assert answer == {"status": "Accepted"}


async def test_call_to_a_station_not_connected_raises_station_not_connected(
    csms: Csms, station: RegisteredStation
) -> None:
    with pytest.raises(StationNotConnected) as raised:
        await csms.gateway.call(
            station.station_id, "ChangeAvailability", MAKE_INOPERATIVE
        )

    assert raised.value.station_id == station.station_id


async def test_call_answered_with_a_callerror_raises_call_failed(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    async with connected_station(
        ocpp_url,
        station.station_id,
        station.password,
        charge_point_class=RefusingStation,
    ):
        with pytest.raises(CallFailed) as failed:
            await csms.gateway.call(
                station.station_id, "ChangeAvailability", MAKE_INOPERATIVE
            )

    assert failed.value.action == "ChangeAvailability"
    assert failed.value.code == "GenericError"
    assert failed.value.description == "not today"


async def test_second_call_is_sent_only_after_the_first_is_answered(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        first = asyncio.create_task(
            csms.gateway.call(
                station.station_id,
                "ChangeAvailability",
                {"connectorId": 1, "type": "Inoperative"},
            )
        )
        second = asyncio.create_task(
            csms.gateway.call(
                station.station_id,
                "ChangeAvailability",
                {"connectorId": 2, "type": "Inoperative"},
            )
        )
        seen: list[Any] = []

        seen.append(await receive_frame(socket))
        # OCPP-J allows one CALL in flight: nothing more arrives while it waits.
        with pytest.raises(TimeoutError):
            await receive_frame(socket, timeout=0.2)
        await socket.send(f'[3, "{seen[0][1]}", {{"status": "Accepted"}}]')
        seen.append(await receive_frame(socket))
        await socket.send(f'[3, "{seen[1][1]}", {{"status": "Rejected"}}]')

        answers = await asyncio.gather(first, second)

    assert [frame[3]["connectorId"] for frame in seen] == [1, 2]
    assert list(answers) == [{"status": "Accepted"}, {"status": "Rejected"}]


async def test_calls_to_a_station_that_disconnects_raise_station_not_connected(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        calls = [
            asyncio.create_task(
                csms.gateway.call(
                    station.station_id,
                    "ChangeAvailability",
                    {"connectorId": connector_id, "type": "Inoperative"},
                )
            )
            for connector_id in (1, 2)
        ]
        await receive_frame(socket)
    # The first call was waiting for its answer, the second for its turn.
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert [type(outcome) for outcome in outcomes] == [StationNotConnected] * 2
