"""The roles in separate processes: two gateways, an api and a worker on
PostgreSQL, joined by Redis or NATS, all started here as ``csms serve``.

A customer's charge reaches a station on either gateway; a station moving to
another gateway has one owner (the newer link wins everywhere); a gateway
killed mid-charge loses nothing: its stations reconnect to the other one and
finish their charges there. With ``--gateways 2`` the gateways share one port
and a dead one is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from csms.bus import connect_bus
from csms.clock import SystemClock
from csms.cluster import EventRelay, Subjects
from csms.db.engine import create_engine, create_sessionmaker
from csms.events import Event, EventFeed
from csms.simulator.station import V16, V201, run_station
from csms.stations.models import GatewayLease, Station
from csms.stations.service import StationService

from conftest import OPERATOR_TOKEN
from support.brokers import broker_url  # noqa: F401 (the bus_url fixture)
from support.charging import FAST, start_charge, wait_for_session
from support.customers import register_customer
from support.databases import PostgresTemplate
from support.polling import eventually
from support.process import CsmsProcess, start_csms
from support.stations import basic_auth

PASSWORD = "station-password-0001"


@pytest.fixture
async def postgres_url(postgres_template: PostgresTemplate) -> str:
    await postgres_template.reset()
    return postgres_template.url_of(postgres_template.name)


@dataclass
class Cluster:
    database_url: str
    gateways: dict[str, CsmsProcess]
    api: CsmsProcess
    worker: CsmsProcess
    env: dict[str, str]
    processes: list[CsmsProcess] = field(default_factory=list)

    def url_of(self, gateway: str) -> str:
        return self.gateways[gateway].ocpp_url

    async def owner_of(self, station_id: str) -> tuple[str | None, int, bool]:
        engine = create_engine(self.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                row = (
                    await session.execute(
                        select(
                            Station.owner, Station.owner_epoch, Station.online
                        ).where(Station.id == station_id)
                    )
                ).one()
        finally:
            await engine.dispose()
        return row[0], int(row[1]), bool(row[2])


@contextlib.asynccontextmanager
async def _cluster(database_url: str, bus_url: str) -> AsyncIterator[Cluster]:
    env = {
        "CSMS_BUS_URL": bus_url,
        # Its own subjects: parallel tests share the broker.
        "CSMS_CLUSTER_NAME": f"t{uuid.uuid4().hex[:12]}",
        "CSMS_OPERATOR_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
        "CSMS_RESYNC_DELAY": "PT0.2S",
        "CSMS_RESYNC_GRACE": "PT1S",
        "CSMS_LIVENESS_CHECK_INTERVAL": "PT0.3S",
        "CSMS_GATEWAY_LEASE_INTERVAL": "PT0.5S",
        "CSMS_GATEWAY_LEASE_LAPSE": "PT3S",
    }
    started: list[CsmsProcess] = []
    try:
        gateways = {}
        for name in ("gw-a", "gw-b"):
            gateways[name] = await start_csms(
                database_url,
                roles=("gateway",),
                extra_env={**env, "CSMS_GATEWAY_ID": name},
            )
            started.append(gateways[name])
        api = await start_csms(database_url, roles=("api",), extra_env=env)
        started.append(api)
        worker = await start_csms(database_url, roles=("worker",), extra_env=env)
        started.append(worker)
        yield Cluster(database_url, gateways, api, worker, env, started)
    finally:
        for process in started:
            if process.process.returncode is None:
                await process.kill()


async def _register(database_url: str, station_ids: list[str]) -> None:
    engine = create_engine(database_url)
    try:
        stations = StationService(create_sessionmaker(engine), clock=SystemClock())
        for station_id in station_ids:
            await stations.register(station_id, password=PASSWORD)
    finally:
        await engine.dispose()


async def _wait_owner(cluster: Cluster, station_id: str, gateway: str) -> int:
    epoch = 0

    async def owned() -> bool:
        nonlocal epoch
        owner, epoch, online = await cluster.owner_of(station_id)
        return owner == gateway and online

    await eventually(owned, timeout=15)
    return epoch


async def test_a_charge_started_through_the_api_reaches_a_station_on_either_gateway(
    postgres_url: str, bus_url: str
) -> None:
    await _register(postgres_url, ["CP-A", "CP-B"])
    async with (
        _cluster(postgres_url, bus_url) as cluster,
        httpx.AsyncClient(base_url=cluster.api.http_url, timeout=20) as http,
        run_station(cluster.url_of("gw-a"), "CP-A", PASSWORD, options=FAST) as on_a,
        run_station(
            cluster.url_of("gw-b"), "CP-B", PASSWORD, version=V201, options=FAST
        ) as on_b,
    ):
        await _wait_owner(cluster, "CP-A", "gw-a")
        await _wait_owner(cluster, "CP-B", "gw-b")
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["bus"] == "ok"
        customer = await register_customer(http)
        car_id = await customer.add_car()

        records = []
        for station_id in ("CP-A", "CP-B"):

            async def start(station_id: str = station_id) -> bool:
                # The api learns of a new link over the bus; until then the
                # station counts as offline (409), never as someone else's.
                answer = await customer.post(
                    "/api/v1/charging-sessions",
                    json={"car_id": car_id, "station_id": station_id},
                )
                if answer.status_code == 202:
                    records.append(answer.json())
                    return True
                assert answer.status_code == 409, answer.text
                return False

            await eventually(start, timeout=10)
        started = [
            await wait_for_session(customer, record["id"], state="Started")
            for record in records
        ]
        for record in started:
            answer = await customer.post(
                f"/api/v1/charging-sessions/{record['id']}/stop"
            )
            assert answer.status_code == 202, answer.text
        finished = [
            await wait_for_session(customer, record["id"], state="Finished")
            for record in started
        ]

    assert [record["station_id"] for record in finished] == ["CP-A", "CP-B"]
    for record, station in zip(finished, (on_a, on_b), strict=True):
        [charge] = station.history
        assert record["energy_wh"] == charge.meter_stop_wh - charge.meter_start_wh


async def test_a_station_moving_between_gateways_has_one_owner(
    postgres_url: str, bus_url: str
) -> None:
    await _register(postgres_url, ["CP-1"])
    async with (
        _cluster(postgres_url, bus_url) as cluster,
        httpx.AsyncClient(
            base_url=cluster.api.http_url,
            timeout=20,
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        ) as operator,
    ):
        first = await websockets.connect(
            f"{cluster.url_of('gw-a')}/CP-1",
            subprotocols=[V16],  # type: ignore[list-item]
            additional_headers=basic_auth("CP-1", PASSWORD),
        )
        first_epoch = await _wait_owner(cluster, "CP-1", "gw-a")

        async with run_station(cluster.url_of("gw-b"), "CP-1", PASSWORD) as moved:
            second_epoch = await _wait_owner(cluster, "CP-1", "gw-b")
            # The link on gw-a is closed by gw-a itself, told over the bus.
            await asyncio.wait_for(first.wait_closed(), 10)
            assert first.close_code == 4000
            assert second_epoch > first_epoch

            async def command_reaches_gw_b() -> bool:
                answer = await operator.post(
                    "/api/v1/operator/stations/CP-1/availability",
                    json={"availability": "operative"},
                )
                return answer.status_code == 200 and answer.json()["status"] == (
                    "Accepted"
                )

            await eventually(command_reaches_gw_b, timeout=10)
            assert moved.online
            # gw-a's close of its stale link left the station online, on gw-b.
            owner, epoch, online = await cluster.owner_of("CP-1")
            assert (owner, epoch, online) == ("gw-b", second_epoch, True)


@pytest.mark.parametrize("version", [V16, V201])
async def test_killing_a_gateway_moves_its_stations_without_losing_a_record(
    postgres_url: str, bus_url: str, version: str
) -> None:
    await _register(postgres_url, ["CP-1"])
    async with _cluster(postgres_url, bus_url) as cluster:
        urls = [cluster.url_of("gw-a"), cluster.url_of("gw-b")]
        async with (
            httpx.AsyncClient(base_url=cluster.api.http_url, timeout=20) as http,
            run_station(urls, "CP-1", PASSWORD, version=version, options=FAST) as cp,
        ):
            await _wait_owner(cluster, "CP-1", "gw-a")
            customer = await register_customer(http)
            car_id = await customer.add_car()
            record = await start_charge(customer, car_id=car_id, station_id="CP-1")
            started = await wait_for_session(customer, record["id"], state="Started")

            await cluster.gateways["gw-a"].kill()
            # The station falls back to gw-b, charging on meanwhile.
            await _wait_owner(cluster, "CP-1", "gw-b")
            await asyncio.sleep(0.5)
            await cp.stop_locally(started["connector_id"])
            finished = await wait_for_session(customer, record["id"], state="Finished")
            await cp.drained()

    [charge] = cp.history
    assert finished["id"] == record["id"]
    assert finished["energy_wh"] == charge.meter_stop_wh - charge.meter_start_wh
    assert finished["transaction_id"] == str(charge.transaction_id)


STATIONS = [f"CP-{number}" for number in range(8)]
_STARTED = re.compile(r"supervisor\.gateway\.started\s+gateway=(\S+)\s+pid=(\d+)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _owners(database_url: str) -> dict[str | None, int]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = (
                await session.execute(
                    select(Station.owner, func.count())
                    .where(Station.online.is_(True))
                    .group_by(Station.owner)
                )
            ).all()
            leases = set(await session.scalars(select(GatewayLease.id)))
    finally:
        await engine.dispose()
    owners = {owner: int(count) for owner, count in rows}
    assert set(owners) <= leases | {None}, "a station owned by a gateway not alive"
    return owners


async def test_gateways_share_the_port_and_a_dead_one_is_replaced(
    postgres_url: str, bus_url: str
) -> None:
    engine = create_engine(postgres_url)
    try:
        stations = StationService(create_sessionmaker(engine), clock=SystemClock())
        for station_id in STATIONS:
            await stations.register(station_id, password=PASSWORD)
    finally:
        await engine.dispose()
    port = _free_port()
    parent = await start_csms(
        postgres_url,
        ocpp_port=port,
        extra_env={
            "CSMS_BUS_URL": bus_url,
            "CSMS_CLUSTER_NAME": f"t{uuid.uuid4().hex[:12]}",
            "CSMS_OPERATOR_BOOTSTRAP_TOKEN": OPERATOR_TOKEN,
            "CSMS_LIVENESS_CHECK_INTERVAL": "PT0.3S",
        },
        arguments=("--gateways", "2"),
    )
    url = f"ws://127.0.0.1:{port}/ocpp"
    try:

        async def gateways_listen() -> bool:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return parent.log.count(b"CSMS running (gateway") == 2
            return False

        await eventually(gateways_listen, timeout=60)
        async with contextlib.AsyncExitStack() as stack:
            for station_id in STATIONS:
                await stack.enter_async_context(run_station(url, station_id, PASSWORD))

            async def all_online() -> bool:
                return sum((await _owners(postgres_url)).values()) == len(STATIONS)

            await eventually(all_online, timeout=20)
            owners = await _owners(postgres_url)
            assert set(owners) <= {"local-1", "local-2"}

            started = dict(_STARTED.findall(parent.log.decode()))
            victim = max(owners, key=lambda owner: owners[owner] if owner else -1)
            assert victim is not None
            os.kill(int(started[victim]), signal.SIGKILL)

            async def replaced() -> bool:
                restarted = [
                    line
                    for line in parent.log.decode().splitlines()
                    if "supervisor.gateway.started" in line
                    and f"gateway={victim}" in line
                    and "restarts=1" in line
                ]
                return bool(restarted)

            await eventually(replaced, timeout=30)
            # Every station is back, on whichever gateway took it.
            await eventually(all_online, timeout=60)

        assert await parent.terminate(timeout=30) == 0
        assert b"supervisor.gateway.killed" not in parent.log
    finally:
        if parent.process.returncode is None:
            await parent.kill()


async def test_events_of_one_process_reach_the_feed_of_another_once(
    bus_url: str,
) -> None:
    subjects = Subjects(f"t{uuid.uuid4().hex[:12]}")
    gateway_feed, api_feed = EventFeed(), EventFeed()
    gateway_bus, api_bus = connect_bus(bus_url), connect_bus(bus_url)
    await gateway_bus.start()
    await api_bus.start()
    sender = EventRelay(gateway_feed, gateway_bus, subjects=subjects, receive=False)
    receiver = EventRelay(api_feed, api_bus, subjects=subjects, receive=True)
    await sender.start()
    await receiver.start()
    seen_by_gateway: list[Event] = []
    gateway_feed.add_listener(seen_by_gateway.append)
    try:
        async with api_feed.subscription() as events:
            gateway_feed.publish(Event("station.changed", {"station_id": "CP-1"}))
            api_feed.publish(Event("charge.changed", {"record_id": "r-1"}))
            seen_by_api = [await asyncio.wait_for(anext(events), 10)]
            seen_by_api.append(await asyncio.wait_for(anext(events), 10))
            # Nothing comes twice: the api's own event is not relayed back to
            # it, nor to the gateway (which does not receive).
            with contextlib.suppress(TimeoutError):
                seen_by_api.append(await asyncio.wait_for(anext(events), 0.5))
        assert sorted(event.kind for event in seen_by_api) == [
            "charge.changed",
            "station.changed",
        ]
        assert [event.kind for event in seen_by_gateway] == ["station.changed"]
    finally:
        await sender.stop()
        await receiver.stop()
        await gateway_bus.close()
        await api_bus.close()
