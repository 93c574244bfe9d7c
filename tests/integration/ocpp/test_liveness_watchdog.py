"""The liveness watchdog over real sockets, ticked by hand with the manual clock.

(Named apart from ``tests/unit/ocpp/test_liveness.py``: the test folders are not
packages, so two test modules may not share a file name.)

The CSMS under test checks liveness once an hour of real time, so only the
``check_liveness()`` calls made here tick it, at the time ``clock`` says.
Defaults: heartbeat window 180 s x 1.5 = 270 s, idle pings after 180 s,
charging pings after 5 s, a ping unanswered for 10 s means a dead link.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from ocpp.v16 import call as call16

from csms.app import Csms

from conftest import RegisteredStation
from support.clock import ManualClock
from support.polling import eventually
from support.station_calls import boot, report_status_16, station_view
from support.stations import connected_station

WINDOW = 270.0
IDLE_PING = 180.0
CHARGING_PING = 5.0
PING_TIMEOUT = 10.0


async def _wait_for_pong(csms: Csms, station_id: str, clock: ManualClock) -> None:
    """A pong counts as seen at the clock's time; flushing makes it visible."""

    async def pong_seen() -> bool:
        await csms.gateway.flush_last_seen()
        return (await csms.stations.get(station_id)).last_seen_at == clock.now()

    await eventually(pong_seen)


async def test_silent_idle_station_is_marked_unavailable_and_dropped(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    clock: ManualClock,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)

        clock.advance(WINDOW + 1)
        due = await csms.gateway.check_liveness()
        await asyncio.wait_for(cp.socket.wait_closed(), 5)

        async def offline() -> bool:
            return not (await csms.stations.get(station.station_id)).online

        await eventually(offline)

    assert due.silent == [station.station_id]
    view = await station_view(operator_http, station.station_id)
    assert view["state"] == "Unavailable"
    assert not csms.gateway.is_connected(station.station_id)


async def test_station_that_keeps_sending_frames_stays_available(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    clock: ManualClock,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)

        clock.advance(WINDOW - 100)
        await cp.call(call16.Heartbeat())
        clock.advance(WINDOW - 100)
        due = await csms.gateway.check_liveness()
        answer = await cp.call(call16.Heartbeat())
        view = await station_view(operator_http, station.station_id)

    assert due.silent == []
    assert due.dead == []
    assert answer.current_time
    assert view["state"] == "Available"
    assert view["online"] is True


async def test_idle_station_is_pinged_and_its_pong_keeps_it_alive(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)

        clock.advance(IDLE_PING - 1)
        early = await csms.gateway.check_liveness()
        clock.advance(1)
        due = await csms.gateway.check_liveness()
        await _wait_for_pong(csms, station.station_id, clock)
        clock.advance(WINDOW - 1)
        later = await csms.gateway.check_liveness()

        assert early.ping == []
        assert due.ping == [station.station_id]
        assert later.dead == []
        assert later.silent == []
        assert csms.gateway.is_connected(station.station_id)
        assert (await csms.stations.get(station.station_id)).state == "Available"


async def test_charging_station_is_pinged_at_the_charging_interval(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        await report_status_16(cp, 1, "Charging")

        clock.advance(CHARGING_PING - 1)
        early = await csms.gateway.check_liveness()
        clock.advance(1)
        due = await csms.gateway.check_liveness()

    assert early.ping == []
    assert due.ping == [station.station_id]


async def test_silent_charging_station_stays_charging_while_its_pongs_return(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    clock: ManualClock,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        await report_status_16(cp, 1, "Charging")

        clock.advance(WINDOW + 1)
        due = await csms.gateway.check_liveness()
        await _wait_for_pong(csms, station.station_id, clock)
        clock.advance(PING_TIMEOUT + 1)
        later = await csms.gateway.check_liveness()
        view = await station_view(operator_http, station.station_id)

    assert due.silent == []
    assert due.ping == [station.station_id]
    assert later.dead == []
    assert view["state"] == "Charging"
    assert view["online"] is True


async def test_last_seen_is_stored_in_batches_by_the_watchdog(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    clock: ManualClock,
    operator_http: httpx.AsyncClient,
) -> None:
    async with connected_station(ocpp_url, station.station_id, station.password) as cp:
        await boot(cp)
        booted_at = clock.now()

        clock.advance(60)
        await cp.call(call16.Heartbeat())
        before_tick = await station_view(operator_http, station.station_id)
        await csms.gateway.check_liveness()
        after_tick = await station_view(operator_http, station.station_id)

    assert datetime.fromisoformat(before_tick["last_seen_at"]) == booted_at
    assert datetime.fromisoformat(after_tick["last_seen_at"]) == clock.now()
