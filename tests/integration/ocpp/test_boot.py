"""Boot, heartbeat and live state over a real socket, for both OCPP versions."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from conftest import RegisteredStation
from support.stations import V16, V201, connected_station


async def test_boot_16_is_accepted_with_the_heartbeat_interval(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        answer = await cp.call(
            call16.BootNotification(
                charge_point_vendor="Acme",
                charge_point_model="Volt-1",
                charge_point_serial_number="SN-1",
                firmware_version="1.2.3",
            )
        )
        assert answer.status == "Accepted"
        assert answer.interval == 180

        body = (
            await operator_http.get(f"/api/v1/operator/stations/{station.station_id}")
        ).json()
    assert body["vendor"] == "Acme"
    assert body["model"] == "Volt-1"
    assert body["firmware_version"] == "1.2.3"
    assert body["ocpp_version"] == V16
    assert body["state"] == "Available"
    assert body["online"] is True


async def test_boot_201_is_accepted_and_the_station_is_available(
    ocpp_url: str, station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    async with connected_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as cp:
        answer = await cp.call(
            call201.BootNotification(
                charging_station={
                    "vendor_name": "Acme",
                    "model": "Volt-2",
                    "firmware_version": "2.0",
                },
                reason="PowerUp",
            )
        )
        assert answer.status == "Accepted"
        assert answer.interval == 180
        body = (
            await operator_http.get(f"/api/v1/operator/stations/{station.station_id}")
        ).json()
    assert body["ocpp_version"] == V201
    assert body["model"] == "Volt-2"
    assert body["state"] == "Available"


async def test_heartbeat_answers_the_current_utc_time(
    ocpp_url: str, station: RegisteredStation
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await cp.call(
            call16.BootNotification(charge_point_vendor="A", charge_point_model="B")
        )
        answer = await cp.call(call16.Heartbeat())
    current = datetime.fromisoformat(answer.current_time.replace("Z", "+00:00"))
    assert current.tzinfo is not None
    assert current.utcoffset() == UTC.utcoffset(None)
    assert abs((current - datetime.now(UTC)).total_seconds()) < 60
