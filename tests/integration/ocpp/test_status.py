"""StatusNotification: connectors are stored and the station's state follows them."""

from __future__ import annotations

import httpx

from conftest import RegisteredStation
from support.station_calls import (
    boot,
    report_status_16,
    report_status_201,
    station_view,
)
from support.stations import V201, connected_station


def _connectors(view: dict[str, object]) -> list[tuple[int, int, str]]:
    connectors = view["connectors"]
    assert isinstance(connectors, list)
    return [(c["evse_id"], c["connector_id"], c["status"]) for c in connectors]


async def test_status_16_is_stored_per_connector(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        await report_status_16(cp, 1, "Available")
        await report_status_16(cp, 2, "Available")
        await report_status_16(cp, 2, "Preparing")

        view = await station_view(operator_http, station.station_id)

    assert _connectors(view) == [(1, 1, "Available"), (2, 2, "Preparing")]
    assert view["state"] == "Available"


async def test_charging_connector_makes_the_station_charging(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        await report_status_16(cp, 1, "Available")
        await report_status_16(cp, 2, "Charging")

        view = await station_view(operator_http, station.station_id)

    assert view["state"] == "Charging"


async def test_every_connector_out_of_order_makes_the_station_unavailable(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        await report_status_16(cp, 1, "Unavailable")
        await report_status_16(cp, 2, "Faulted")

        view = await station_view(operator_http, station.station_id)

    assert view["state"] == "Unavailable"
    assert view["online"] is True


async def test_connector_zero_faulted_makes_the_station_unavailable(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        await report_status_16(cp, 1, "Available")
        await report_status_16(cp, 0, "Faulted")

        view = await station_view(operator_http, station.station_id)

    assert view["state"] == "Unavailable"
    assert (0, 0, "Faulted") in _connectors(view)


async def test_status_201_is_stored_per_evse_and_connector(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as cp:
        await boot(cp)
        await report_status_201(cp, 1, 1, "Available")
        await report_status_201(cp, 2, 1, "Reserved")

        view = await station_view(operator_http, station.station_id)

    assert _connectors(view) == [(1, 1, "Available"), (2, 1, "Reserved")]
    assert view["state"] == "Available"


async def test_occupied_201_connector_makes_the_station_charging(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as cp:
        await boot(cp)
        await report_status_201(cp, 1, 1, "Occupied")

        view = await station_view(operator_http, station.station_id)

    assert view["state"] == "Charging"


async def test_connector_back_to_available_makes_the_station_available(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as cp:
        await boot(cp)
        await report_status_201(cp, 1, 1, "Occupied")
        await report_status_201(cp, 1, 1, "Available")

        view = await station_view(operator_http, station.station_id)

    assert view["state"] == "Available"
    assert _connectors(view) == [(1, 1, "Available")]
