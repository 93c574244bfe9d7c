"""A scaled-down load run: the load generator's stations against a CSMS started in
the test. Correctness only — nothing dropped, every call answered — never timing.

SQLite only: the full-scale runs on PostgreSQL are benchmarks, run by hand
(``benchmarks/fleet.py``). The reconnecting and anonymous modes run against a
small server in the test, which drops links on purpose.
"""

from __future__ import annotations

import asyncio
import io

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from csms.app import Csms
from csms.db.engine import create_sessionmaker
from csms.simulator.load import (
    V16,
    V201,
    LoadProfile,
    build_anonymous_fleet,
    format_report,
    now_iso,
    run_load,
    summarize,
)
from csms.stations.bulk import StationImporter, StationRow


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
async def test_every_call_of_a_small_mixed_fleet_is_answered(csms: Csms) -> None:
    rows = [
        StationRow(
            line=i,
            station_id=f"LOAD-{i:03d}",
            latitude=None,
            longitude=None,
            name=None,
            password=None,
        )
        for i in range(40)
    ]
    importer = StationImporter(create_sessionmaker(csms.engine), clock=csms.clock)
    imported = await importer.import_rows(rows)
    fleet = sorted(imported.generated_passwords.items())
    profile = LoadProfile(
        url=f"ws://127.0.0.1:{csms.ocpp_port}/ocpp",
        duration=6,
        heartbeat_interval=1,
        charging_share=0.5,
        meter_interval=1,
        charge_duration=3,
        v201_share=0.5,
    )

    merged = await asyncio.to_thread(
        run_load, fleet, profile, processes=2, out=io.StringIO()
    )

    assert merged["connected"] == 40, format_report(merged)
    assert merged["connect_failures"] == 0
    assert merged["disconnects"] == 0
    assert dict(merged["errors"]) == {}, format_report(merged)
    answered = merged["latencies"]
    assert len(answered["BootNotification"]) == 40
    assert len(answered["Heartbeat"]) >= 40 * 3
    assert answered["StartTransaction"] or answered["TransactionEvent"]


class _DroppingServer:
    """Answers every CALL; closes each station's first link after its boot.

    What a CSMS restart looks like to the stations, without the CSMS: tells
    whether the generator reconnects and boots again, and what it sends.
    """

    def __init__(self) -> None:
        self.authorization: list[str | None] = []
        self._dropped: set[str] = set()

    async def handle(self, socket: ServerConnection) -> None:
        assert socket.request is not None
        station_id = socket.request.path.rsplit("/", 1)[-1]
        self.authorization.append(socket.request.headers.get("Authorization"))
        async for raw in socket:
            frame = orjson.loads(raw)
            answer: dict[str, object] = {}
            if frame[2] == "BootNotification":
                answer = {"status": "Accepted", "currentTime": now_iso(), "interval": 1}
            await socket.send(orjson.dumps([3, frame[1], answer]).decode())
            if frame[2] == "StatusNotification" and station_id not in self._dropped:
                self._dropped.add(station_id)
                await socket.close()
                return


async def test_stations_reconnect_and_boot_again_after_a_dropped_link() -> None:
    server = _DroppingServer()
    async with serve(server.handle, "127.0.0.1", 0, subprotocols=[V16, V201]) as ws:  # type: ignore[list-item]
        port = next(iter(ws.sockets)).getsockname()[1]
        profile = LoadProfile(
            url=f"ws://127.0.0.1:{port}/ocpp",
            duration=5,
            heartbeat_interval=1,
            reconnect=True,
            reconnect_delay=0.2,
        )

        merged = await asyncio.to_thread(
            run_load, build_anonymous_fleet(10), profile, processes=1, out=io.StringIO()
        )

    assert merged["connected"] == 10, format_report(merged)
    assert merged["disconnects"] == 10
    assert merged["reconnects"] == 10
    assert len(merged["booted_at"]) == 20
    assert dict(merged["errors"]) == {}


async def test_an_anonymous_fleet_sends_no_credentials() -> None:
    server = _DroppingServer()
    async with serve(server.handle, "127.0.0.1", 0, subprotocols=[V16]) as ws:  # type: ignore[list-item]
        port = next(iter(ws.sockets)).getsockname()[1]
        profile = LoadProfile(url=f"ws://127.0.0.1:{port}/ocpp", duration=2)

        merged = await asyncio.to_thread(
            run_load, build_anonymous_fleet(3), profile, processes=1, out=io.StringIO()
        )

    assert server.authorization == [None, None, None]
    # Without reconnect, a dropped link ends the station's run.
    assert merged["disconnects"] == 3
    assert merged["reconnects"] == 0


def test_a_summary_is_plain_json_with_percentiles_in_milliseconds() -> None:
    merged = {
        "latencies": {"Heartbeat": [0.001, 0.002, 0.003, 0.004]},
        "errors": {"Heartbeat:InternalError": 1},
        "connected": 2,
        "connect_failures": 0,
        "disconnects": 0,
        "reconnects": 0,
        "connect_seconds": [0.01, 0.02],
        "booted_at": [],
        "timeline": [
            (100.0, 2, 0, 0, 2),
            (111.0, 2, 4, 0, 2),
            (140.0, 2, 40, 0, 2),
            (141.0, 2, 41, 0, 0),
        ],
        "elapsed": 31.0,
        "stations": 2,
        "processes": 1,
    }

    summary = orjson.loads(orjson.dumps(summarize(merged)))

    assert summary["actions"]["Heartbeat"] == {
        "count": 4,
        "p50": 3.0,
        "p95": 4.0,
        "p99": 4.0,
        "max": 4.0,
    }
    assert summary["errors"] == {"Heartbeat:InternalError": 1}
    # Ten seconds after the fleet was up, until the last report with it up.
    assert summary["steady_calls_per_second"] == (40 - 4) / (140 - 111)


async def test_an_idle_station_answers_the_csms_at_once() -> None:
    answers: list[tuple[float, list[object]]] = []
    asked: list[float] = []

    async def ask_after_status(socket: ServerConnection) -> None:
        async for raw in socket:
            frame = orjson.loads(raw)
            if frame[0] == 3:
                answers.append((asyncio.get_running_loop().time() - asked[0], frame))
                continue
            answer: dict[str, object] = {}
            if frame[2] == "BootNotification":
                answer = {
                    "status": "Accepted",
                    "currentTime": now_iso(),
                    "interval": 60,
                }
            await socket.send(orjson.dumps([3, frame[1], answer]).decode())
            if frame[2] == "StatusNotification":
                # The station has nothing to send for a minute now.
                asked.append(asyncio.get_running_loop().time())
                await socket.send(
                    orjson.dumps(
                        [
                            2,
                            "csms-1",
                            "TriggerMessage",
                            {"requestedMessage": "Heartbeat"},
                        ]
                    ).decode()
                )

    async with serve(ask_after_status, "127.0.0.1", 0, subprotocols=[V16]) as ws:  # type: ignore[list-item]
        port = next(iter(ws.sockets)).getsockname()[1]
        profile = LoadProfile(url=f"ws://127.0.0.1:{port}/ocpp", duration=3)

        await asyncio.to_thread(
            run_load, build_anonymous_fleet(1), profile, processes=1, out=io.StringIO()
        )

    assert len(answers) == 1
    elapsed, frame = answers[0]
    assert frame == [3, "csms-1", {"status": "Accepted"}]
    assert elapsed < 1.0
