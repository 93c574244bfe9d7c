"""A long fault run, by hand: hundreds of concurrent charges on simulated 1.6 and
2.0.1 stations while the CSMS is killed (SIGKILL) and restarted again and again,
on a scratch PostgreSQL database the script creates and drops.

    .venv/bin/python benchmarks/fault_run.py --stations 200 --kills 5 --duration 120

It prints records lost, duplicated and with the wrong energy (all must be 0),
and how long stations took to reconnect and their queues to be delivered after
each restart. Everything talks to 127.0.0.1 only; the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import select
from sqlalchemy.engine import make_url

from csms.charging.models import ChargeDetailRecord
from csms.clock import SystemClock
from csms.db.engine import create_engine, create_sessionmaker
from csms.db.migrate import migrate
from csms.simulator.station import V16, V201, SimulatorOptions, run_station
from csms.stations.service import StationService

PASSWORD = "fault-run-password-0001"
JWT_SECRET = "fault-run-jwt-secret-that-is-long-enough-0123456789"
_RUNNING = re.compile(rb"http://[\d.]+:(\d+)/docs, stations ws://[\d.]+:(\d+)/ocpp")
# A minute of simulated time every 2 s of real time: a meter value per charge
# every 2 s.
OPTIONS = SimulatorOptions(
    meter_interval=60,
    time_factor=30,
    resend_timeout=10,
    reconnect_delay=0.5,
    reconnect_delay_max=4,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _admin(url: str, statement: str) -> None:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        database=parsed.database or "postgres",
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


class CsmsProcess:
    def __init__(self, database_url: str, http_port: int, ocpp_port: int) -> None:
        self.database_url = database_url
        self.http_port = http_port
        self.ocpp_port = ocpp_port
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "CSMS_DATABASE_URL": self.database_url,
            "CSMS_HTTP_HOST": "127.0.0.1",
            "CSMS_HTTP_PORT": str(self.http_port),
            "CSMS_OCPP_HOST": "127.0.0.1",
            "CSMS_OCPP_PORT": str(self.ocpp_port),
            "CSMS_JWT_SECRET": JWT_SECRET,
            "CSMS_RESYNC_DELAY": "PT2S",
            "CSMS_RESYNC_GRACE": "PT30S",
            "CSMS_LOG_LEVEL": "WARNING",
        }
        self.process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "csms"),
            "serve",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stderr is not None
        while True:
            line = await asyncio.wait_for(self.process.stderr.readline(), 60)
            if not line:
                raise RuntimeError("csms serve exited while starting")
            if _RUNNING.search(line):
                break
        self._drain = asyncio.create_task(self._discard_log())

    async def _discard_log(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        while await self.process.stderr.readline():
            pass

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 30)


async def _drive(station: Any, token: str, stop_at: float, rng: random.Random) -> None:
    """Charge on both connectors, one charge after another, until ``stop_at``."""

    async def connector(connector_id: int) -> None:
        while time.monotonic() < stop_at:
            await station.plug_in_and_charge(token, connector_id)
            await asyncio.sleep(
                min(rng.uniform(2, 15), max(0.1, stop_at - time.monotonic()))
            )
            await station.stop_locally(connector_id)
            await asyncio.sleep(rng.uniform(0.2, 2))

    await asyncio.gather(connector(1), connector(2))


async def _report_if_slow(work: Any, simulated: list[Any]) -> None:
    """Wait for ``work``; every 30 s say which stations hold it up."""
    waiting = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({waiting}, timeout=30)
        if done:
            waiting.result()
            return
        offline = [s.id for s in simulated if not s.online]
        stuck = [
            (s.id, len(s.outbox), s.outbox[0].sends) for s in simulated if s.outbox
        ]
        print(
            f"  still waiting: offline {offline[:5]} ({len(offline)}), "
            f"queues {stuck[:5]} ({len(stuck)})",
            flush=True,
        )


async def run(arguments: argparse.Namespace) -> int:
    admin_url = os.environ.get(
        "CSMS_TEST_POSTGRES_URL",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    )
    name = f"csms_fault_run_{os.getpid()}"
    database_url = (
        make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    )
    rng = random.Random(arguments.seed)
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    csms = CsmsProcess(database_url, _free_port(), _free_port())
    try:
        engine = create_engine(database_url)
        await migrate(engine)
        stations = StationService(create_sessionmaker(engine), clock=SystemClock())
        ids = [
            (f"FR-{n:04d}", V16 if n % 2 == 0 else V201)
            for n in range(arguments.stations)
        ]
        for station_id, _ in ids:
            await stations.register(station_id, password=PASSWORD)
        await csms.start()
        ocpp_url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{csms.http_port}", timeout=30
        ) as http:
            email = "fault-run@example.com"
            await http.post(
                "/api/v1/customers",
                json={"email": email, "password": "correct horse battery", "name": "F"},
            )
            login = await http.post(
                "/api/v1/auth/token",
                data={"username": email, "password": "correct horse battery"},
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            token = (await http.get("/api/v1/id-tokens", headers=headers)).json()[0][
                "value"
            ]

        reconnects: list[float] = []
        reconciles: list[float] = []
        async with contextlib.AsyncExitStack() as stack:
            simulated = []
            for station_id, version in ids:
                simulated.append(
                    await stack.enter_async_context(
                        run_station(
                            ocpp_url,
                            station_id,
                            PASSWORD,
                            version=version,
                            options=replace(OPTIONS),
                        )
                    )
                )
            started = time.monotonic()
            stop_at = started + arguments.duration
            drivers = [
                asyncio.create_task(_drive(station, token, stop_at, rng))
                for station in simulated
            ]
            gap = arguments.duration / (arguments.kills + 1)
            for kill in range(arguments.kills):
                await asyncio.sleep(started + gap * (kill + 1) - time.monotonic())
                await csms.kill()
                down_for = rng.uniform(1, 4)
                print(
                    f"kill {kill + 1}: SIGKILL, down for {down_for:.1f} s", flush=True
                )
                await asyncio.sleep(down_for)
                queued = [station for station in simulated if station.outbox]
                outbox_ends = [station.outbox[-1].answer for station in queued]
                await csms.start()
                restarted = time.monotonic()
                await _report_if_slow(
                    asyncio.gather(*(station.link.wait_up() for station in simulated)),
                    simulated,
                )
                reconnects.append(time.monotonic() - restarted)
                # What the stations queued while the CSMS was down, delivered.
                await _report_if_slow(asyncio.gather(*outbox_ends), simulated)
                reconciles.append(time.monotonic() - restarted)
                print(
                    f"  all reconnected after {reconnects[-1]:.2f} s, "
                    f"queued messages delivered after {reconciles[-1]:.2f} s",
                    flush=True,
                )
            await asyncio.gather(*drivers)
            await asyncio.wait_for(
                asyncio.gather(*(station.drained() for station in simulated)), 120
            )

        performed = {
            (station_id, str(charge.transaction_id)): charge
            for (station_id, _), station in zip(ids, simulated, strict=True)
            for charge in station.history
        }
        async with create_sessionmaker(engine)() as session:
            records = (await session.scalars(select(ChargeDetailRecord))).all()
        await engine.dispose()
        stored: dict[tuple[str, str], int] = {}
        for record in records:
            key = (record.station_id, str(record.transaction_id))
            stored[key] = stored.get(key, 0) + 1
        lost = sum(1 for key in performed if key not in stored)
        duplicated = sum(count - 1 for count in stored.values() if count > 1)
        unknown = sum(1 for key in stored if key not in performed)
        by_key = {(r.station_id, str(r.transaction_id)): r for r in records}
        mismatched = sum(
            1
            for key, charge in performed.items()
            if key in by_key
            and (
                by_key[key].state != "Finished"
                or by_key[key].energy_wh != charge.meter_stop_wh - charge.meter_start_wh
            )
        )
        energy = sum(c.meter_stop_wh - c.meter_start_wh for c in performed.values())
        print()
        print(
            f"stations {arguments.stations} "
            f"({len([i for i in ids if i[1] == V16])} 1.6, "
            f"{len([i for i in ids if i[1] == V201])} 2.0.1), "
            f"duration {arguments.duration} s, "
            f"kills {arguments.kills}"
        )
        print(f"charges performed          {len(performed)}  ({energy / 1000:.1f} kWh)")
        print(f"records lost               {lost}")
        print(f"records duplicated         {duplicated}")
        print(f"records the stations never made {unknown}")
        print(f"energy mismatches          {mismatched}")
        if reconnects:
            print(
                "time to reconnect all      "
                f"median {statistics.median(reconnects):.2f} s, "
                f"max {max(reconnects):.2f} s"
            )
            print(
                "time to deliver the queues "
                f"median {statistics.median(reconciles):.2f} s, "
                f"max {max(reconciles):.2f} s"
            )
        return 0 if lost == duplicated == unknown == mismatched == 0 else 1
    finally:
        await csms.terminate()
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--seed", type=int, default=1)
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
