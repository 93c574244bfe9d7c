"""Graceful shutdown: on SIGTERM the CSMS stops accepting, closes station sockets
properly (1001 going away) and exits 0."""

from __future__ import annotations

import websockets
from ocpp.v16 import call as call16

from csms.clock import SystemClock
from csms.db.engine import create_engine, create_sessionmaker
from csms.stations.service import StationService

from support.process import start_csms
from support.stations import connected_station


async def test_sigterm_closes_station_sockets_and_exits_cleanly(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    stations = StationService(create_sessionmaker(engine), clock=SystemClock())
    await stations.register("CP-TERM", password="station-password-0001")
    csms = await start_csms(database_url)
    try:
        async with connected_station(
            csms.ocpp_url, "CP-TERM", "station-password-0001"
        ) as station:
            boot = await station.call(
                call16.BootNotification(charge_point_vendor="A", charge_point_model="B")
            )
            assert boot.status == "Accepted"

            exit_code = await csms.terminate()

            await station.socket.wait_closed()
            assert station.socket.close_code == 1001
        assert exit_code == 0, csms.log.decode()
        assert b"csms.stopped" in csms.log
        stored = await stations.get("CP-TERM")
        assert stored.online is False
    finally:
        if csms.process.returncode is None:
            await csms.kill()
        await engine.dispose()


async def test_a_stopped_csms_accepts_no_new_station(database_url: str) -> None:
    csms = await start_csms(database_url)
    url = csms.ocpp_url
    assert await csms.terminate() == 0
    try:
        await websockets.connect(f"{url}/CP-X", open_timeout=2)
    except OSError:
        refused = True
    else:
        refused = False
    assert refused
