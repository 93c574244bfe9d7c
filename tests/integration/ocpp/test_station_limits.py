"""Per-station limits over a real socket: a flooding station is disconnected
without hurting the others, a flapping one is reported, and 1.6 security
events are stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest
from ocpp.v16 import call as call16

from csms.app import Csms
from csms.settings import Settings

from conftest import RegisteredStation
from support.stations import basic_auth, connected_station, open_socket


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "station_message_rate": 5.0,
            "station_message_burst": 5,
            "station_flood_patience": 10,
            "flap_threshold": 3,
            "flap_window": timedelta(seconds=60),
        }
    )


async def _boot(station: object) -> None:
    answer = await station.call(  # type: ignore[attr-defined]
        call16.BootNotification(charge_point_vendor="A", charge_point_model="B")
    )
    assert answer.status == "Accepted"


async def test_a_flooding_station_is_disconnected_and_another_keeps_working(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    await csms.stations.register("CP-CALM", password="station-password-0002")
    async with connected_station(ocpp_url, "CP-CALM", "station-password-0002") as calm:
        await _boot(calm)
        flooder = await open_socket(
            f"{ocpp_url}/{station.station_id}",
            headers=basic_auth(station.station_id, station.password),
            subprotocols=["ocpp1.6"],
        )
        frames = [
            orjson.dumps([2, str(n), "Heartbeat", {}]).decode() for n in range(60)
        ]
        for frame in frames:
            await flooder.send(frame)
        await asyncio.wait_for(flooder.wait_closed(), 20)

        assert flooder.close_code == 1008
        heartbeat = await calm.call(call16.Heartbeat())
        assert heartbeat.current_time
    events = await csms.stations.list_events(station.station_id)
    assert "message_flood" in [event.kind for event in events]


async def test_a_station_reconnecting_again_and_again_is_reported_as_flapping(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    for _ in range(3):
        async with connected_station(ocpp_url, station.station_id, station.password):
            pass

    async def reported() -> bool:
        events = await csms.stations.list_events(station.station_id)
        return "flapping_connection" in [event.kind for event in events]

    for _ in range(100):
        if await reported():
            break
        await asyncio.sleep(0.05)
    assert await reported()


async def test_a_16_security_event_notification_is_stored(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await _boot(cp)
        await cp.call(
            call16.SecurityEventNotification(
                type="TamperDetectionActivated",
                timestamp="2026-12-03T10:00:00Z",
                tech_info="lid opened",
            )
        )

    events = await csms.stations.list_events(station.station_id)
    stored = [event for event in events if event.kind == "station_security_event"]
    assert stored
    assert stored[0].security is True
    assert stored[0].details["type"] == "TamperDetectionActivated"
