"""A station's link cut in the middle of a charge: it keeps charging, queues,
reconnects and delivers; the CSMS resyncs it. Nothing is lost, nothing counted
twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from csms.app import Csms
from csms.settings import Settings
from csms.simulator.station import V16, V201, run_station

from conftest import RegisteredStation
from support.charging import StationEvents, operator_records
from support.clock import ManualClock
from support.customers import register_customer
from support.faults import (
    FAULTY,
    assert_stored_exactly_once,
    performed,
    resyncing,
    stored_records,
)
from support.polling import eventually

VERSIONS = pytest.mark.parametrize("version", [V16, V201])


@pytest.fixture
async def resyncing_csms(settings: Settings, clock: ManualClock) -> AsyncIterator[Csms]:
    async with resyncing(settings, clock) as app:
        yield app


async def _offline_in_csms(csms: Csms, station_id: str) -> bool:
    return not (await csms.stations.get(station_id)).online


@VERSIONS
async def test_a_link_cut_mid_charge_loses_and_duplicates_nothing(
    version: str,
    resyncing_csms: Csms,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    database_url: str,
) -> None:
    csms = resyncing_csms
    customer = await register_customer(anonymous_http)
    events = StationEvents()
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"

    async with run_station(
        url, station.station_id, station.password, version=version, options=FAULTY
    ) as simulated:
        simulated.on_event = events
        await simulated.plug_in_and_charge(customer.id_token, 1)
        await asyncio.sleep(0.3)

        simulated.cut_link()
        # The station charges on while the link is down; the meter queues.
        await eventually(lambda: _offline_in_csms(csms, station.station_id))
        await eventually(lambda: _online(simulated))
        await simulated.drained()
        await simulated.stop_locally(1)

    assert events.of("disconnected")
    assert events.of("reconnected")
    assert_stored_exactly_once(
        performed(station.station_id, simulated.history),
        await stored_records(database_url, [station.station_id]),
    )


async def _online(simulated: object) -> bool:
    return bool(simulated.online)  # type: ignore[attr-defined]


async def _queued_at_least(simulated: object, count: int) -> bool:
    return len(simulated.outbox) >= count  # type: ignore[attr-defined]


@VERSIONS
async def test_messages_queued_while_offline_are_delivered_in_order_after_reconnect(
    version: str,
    resyncing_csms: Csms,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    database_url: str,
) -> None:
    csms = resyncing_csms
    customer = await register_customer(anonymous_http)
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
    # Slow to come back: the whole charge, stop included, happens offline.
    slow = replace(FAULTY, reconnect_delay=3.0, reconnect_delay_max=3.0)

    async with run_station(
        url, station.station_id, station.password, version=version, options=slow
    ) as simulated:
        await simulated.plug_in_and_charge(customer.id_token, 1)
        simulated.cut_link()
        # A meter value every 0.1 s: wait until three are queued rather than
        # for a fixed time, which a busy machine may not fill.
        await eventually(lambda: _queued_at_least(simulated, 3), timeout=2.5)
        stopping = asyncio.create_task(simulated.stop_locally(1))
        await asyncio.sleep(0)
        assert not simulated.online
        await asyncio.wait_for(stopping, 10)

    delivered = simulated.delivered
    if version == V201:
        # E04.FR.01: events that happened offline say so, numbered in order.
        offline = [event for event in delivered if event.offline]
        assert offline, delivered
        assert offline[-1].event_type == "Ended"
        assert [event.seq_no for event in delivered] == list(range(len(delivered)))
    else:
        assert type(delivered[-1]).__name__ == "StopTransaction"
        times = [payload.timestamp for payload in delivered[:: len(delivered) - 1]]
        assert times == sorted(times)
    assert_stored_exactly_once(
        performed(station.station_id, simulated.history),
        await stored_records(database_url, [station.station_id]),
    )


@VERSIONS
async def test_a_resent_message_is_counted_once(
    version: str,
    resyncing_csms: Csms,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    database_url: str,
) -> None:
    csms = resyncing_csms
    customer = await register_customer(anonymous_http)
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
    # Gives up on every answer almost at once: each message arrives twice or more.
    impatient = replace(FAULTY, resend_timeout=0.002)
    events = StationEvents()

    async with run_station(
        url, station.station_id, station.password, version=version, options=impatient
    ) as simulated:
        simulated.on_event = events
        await simulated.plug_in_and_charge(customer.id_token, 1)
        await asyncio.sleep(0.3)
        await simulated.stop_locally(1)

    assert events.of("resent"), "the station never resent a message"
    assert_stored_exactly_once(
        performed(station.station_id, simulated.history),
        await stored_records(database_url, [station.station_id]),
    )


@VERSIONS
async def test_replayed_and_reordered_messages_change_nothing(
    version: str,
    resyncing_csms: Csms,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    database_url: str,
) -> None:
    csms = resyncing_csms
    customer = await register_customer(anonymous_http)
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"

    async with run_station(
        url, station.station_id, station.password, version=version, options=FAULTY
    ) as simulated:
        await simulated.plug_in_and_charge(customer.id_token, 1)
        await asyncio.sleep(0.3)
        await simulated.stop_locally(1)
        before = await stored_records(database_url, [station.station_id])

        # After the charge: the station sends its whole log again, backwards.
        for payload in reversed(simulated.delivered):
            await simulated.call(payload, suppress=False)

    after = await stored_records(database_url, [station.station_id])
    assert [(r.id, r.energy_wh, r.state) for r in after] == [
        (r.id, r.energy_wh, r.state) for r in before
    ]
    assert_stored_exactly_once(performed(station.station_id, simulated.history), after)


@VERSIONS
async def test_a_station_that_lost_its_charge_is_closed_by_the_resync(
    version: str,
    resyncing_csms: Csms,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    csms = resyncing_csms
    customer = await register_customer(anonymous_http)
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"

    # The station charges, then goes away without a word (power loss) ...
    async with run_station(
        url, station.station_id, station.password, version=version, options=FAULTY
    ) as simulated:
        await simulated.plug_in_and_charge(customer.id_token, 1)
        await asyncio.sleep(0.25)
        await simulated.drained()
        simulated.options.reconnect = False
        simulated.cut_link()
    [record] = await operator_records(operator_http, station.station_id)
    assert record["state"] == "Started"

    # ... and comes back with no memory of that charge.
    async with run_station(
        url, station.station_id, station.password, version=version, options=FAULTY
    ):

        async def closed() -> bool:
            [current] = await operator_records(operator_http, station.station_id)
            return bool(current["state"] == "Finished")

        await eventually(closed)

    [final] = await operator_records(operator_http, station.station_id)
    assert "closed_by_resync" in final["flags"]
    assert final["stop_reason"] == "StationReported"
    # Closed on the last reading the station delivered before it went away.
    assert final["energy_wh"] == record["energy_wh"]
    assert final["energy_wh"] > 0


@VERSIONS
async def test_the_resync_keeps_a_charge_the_station_still_runs(
    version: str,
    resyncing_csms: Csms,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    csms = resyncing_csms
    customer = await register_customer(anonymous_http)
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
    events = StationEvents()

    async with run_station(
        url, station.station_id, station.password, version=version, options=FAULTY
    ) as simulated:
        simulated.on_event = events
        await simulated.plug_in_and_charge(customer.id_token, 1)
        await asyncio.sleep(0.2)
        triggered = len(events.of("trigger"))
        simulated.cut_link()
        await eventually(lambda: _online(simulated))

        async def resynced() -> bool:
            return len(events.of("trigger")) > triggered

        await eventually(resynced, timeout=15)
        # Past the 1.6 grace: a charging connector keeps its charge open.
        await asyncio.sleep(0.8)
        [record] = await operator_records(operator_http, station.station_id)
        assert record["state"] == "Started", (record["stop_reason"], record["flags"])
        assert record["flags"] == []
        await simulated.stop_locally(1)


@VERSIONS
async def test_a_charge_offline_past_the_grace_is_closed_as_incomplete(
    version: str,
    csms: Csms,
    clock: ManualClock,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
    no_return = replace(FAULTY, reconnect=False)

    async with run_station(
        url, station.station_id, station.password, version=version, options=no_return
    ) as simulated:
        await simulated.plug_in_and_charge(customer.id_token, 1)
        await asyncio.sleep(0.25)
        await simulated.drained()
        simulated.cut_link()
        await eventually(lambda: _offline_in_csms(csms, station.station_id))
    [record] = await operator_records(operator_http, station.station_id)

    clock.advance(timedelta(hours=6).total_seconds() - 60)
    assert await csms.reconciler.close_abandoned_charges() == 0
    clock.advance(120)
    assert await csms.reconciler.close_abandoned_charges() == 1
    assert await csms.reconciler.close_abandoned_charges() == 0

    [closed] = await operator_records(operator_http, station.station_id)
    assert closed["state"] == "Finished"
    assert closed["stop_reason"] == "StationOffline"
    assert set(closed["flags"]) >= {"closed_without_stop", "incomplete"}
    # Billed on the last reading that arrived, stopped when it was taken.
    assert closed["energy_wh"] == record["energy_wh"]
    assert closed["energy_wh"] > 0
