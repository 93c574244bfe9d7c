"""Server CPU per OCPP message, in-process: our gateway and the `ocpp` package.

Run from the project root::

    .venv/bin/python benchmarks/bench_messages.py [--database sqlite|postgres|both] \\
        [--messages 2000]

Ours: ``Gateway.handle_frame`` — the step the gateway runs for each frame a
station's socket delivers: parse, validate against the official schema (always
on), route to the handler, run the service call and its database transaction
(committed before answering), encode the answer, count it in the metrics. A
registered station is connected and booted first, as the gateway would have
done; the charge of the meter values is started by a real StartTransaction /
TransactionEvent Started. Logs are rendered as in production (JSON, INFO) and
written to /dev/null. What is not included: the socket and the WebSocket
framing (see ``benchmarks/fleet.py`` for the whole server).

The `ocpp` package: ``ChargePoint.route_message`` on the baseline central
system's classes (``benchmarks/baselines/ocpp_central.py``: ``@on`` handlers
answering Accepted, schema validation on — the package's default, run in a
thread — and no persistence), with an in-memory connection that keeps the last
answer.

For each message: CPU µs per message (``time.process_time``, every thread of
this process: the SQLite driver's thread and the package's validation threads
included), wall µs per message, and — on PostgreSQL — the CPU the database
server's processes spent per message, read from /proc (the server is shared:
other work on it counts too). Messages are sent one after another, so wall
time is latency, not throughput — except in the rows "… at once", where
``TOGETHER`` stations each send a reading at the same moment (1.6 MeterValues,
2.0.1 TransactionEvent Updated), round after round: their messages share
transactions, as a busy fleet's do. There CPU and wall time are per message,
the wall time a round's divided by its messages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import structlog
from common import fetch_value, sampled_values_16
from sqlalchemy.engine import make_url

from csms.app import Csms
from csms.db.engine import create_engine, create_sessionmaker
from csms.db.migrate import migrate
from csms.logs import configure_logging
from csms.ocpp.context import StationLink
from csms.ocpp.framing import OcppVersion
from csms.ocpp.gateway import StationConnection
from csms.ocpp.limits import MessageRateLimiter
from csms.settings import LogFormat, Settings
from csms.stations.bulk import StationImporter, StationRow
from csms.stations.state import StationState

sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))

from ocpp_central import CentralSystem16, CentralSystem201

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
WARMUP = 50
TIMESTAMP = "2026-12-03T10:00:00.000Z"
PASSWORD = "bench-messages-password-01"
# Stations sending together in the last row.
TOGETHER = 50


@dataclass(frozen=True)
class Figure:
    label: str
    messages: int
    cpu_us: float
    wall_us: float
    database_cpu_us: float | None = None


def _meter_values_16(transaction_id: int, meter: int) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [
            {"timestamp": _now(), "sampledValue": sampled_values_16(str(meter))}
        ],
    }


def _transaction_event(
    transaction_id: str, event_type: str, seq_no: int, meter: int, token: str
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": _now(),
        "triggerReason": "MeterValuePeriodic"
        if event_type == "Updated"
        else "Authorized",
        "seqNo": seq_no,
        "transactionInfo": {
            "transactionId": transaction_id,
            "chargingState": "Charging",
        },
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": _now(),
                "sampledValue": [
                    {
                        "value": meter,
                        "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "Wh"},
                    },
                    {"value": 11040, "measurand": "Power.Active.Import"},
                    {"value": 16.0, "measurand": "Current.Import", "phase": "L1"},
                    {"value": 54, "measurand": "SoC"},
                ],
            }
        ],
    }
    if event_type == "Started":
        payload["idToken"] = {"idToken": token, "type": "ISO14443"}
    return payload


def _now() -> str:
    moment = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + (
        f".{int(moment * 1000) % 1000:03d}Z"
    )


def _frame(message_id: int, action: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([2, f"{message_id:x}", action, payload]).decode()


# -- measuring ---------------------------------------------------------------------


def postgres_cpu_seconds() -> float:
    """CPU seconds of every process named postgres on this machine."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if Path(f"/proc/{entry}/comm").read_text().strip() != "postgres":
                continue
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def measure(
    label: str,
    send: Callable[[int], Awaitable[str | None]],
    count: int,
    *,
    watch_postgres: bool,
) -> Figure:
    """Send ``count`` messages one after another (after a warm-up)."""
    for index in range(WARMUP):
        _check(label, await send(index))
    database_before = postgres_cpu_seconds() if watch_postgres else 0.0
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    for index in range(WARMUP, WARMUP + count):
        _check(label, await send(index))
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    database = (
        (postgres_cpu_seconds() - database_before) / count * 1e6
        if watch_postgres
        else None
    )
    return Figure(label, count, cpu / count * 1e6, wall / count * 1e6, database)


def _check(label: str, reply: str | None) -> None:
    # Every message must be answered with a CALLRESULT, or the figure is void.
    if reply is None or not reply.startswith("[3,"):
        raise RuntimeError(f"{label}: not a CALLRESULT: {reply!r}")


# -- ours --------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_json_logs() -> Iterator[None]:
    """Render logs as production does (JSON, INFO), into /dev/null."""
    with open(os.devnull, "w", encoding="utf-8") as sink:
        real = sys.stderr
        sys.stderr = sink
        try:
            configure_logging(level="INFO", log_format=LogFormat.JSON)
        finally:
            sys.stderr = real
        yield
    configure_logging(level="WARNING", log_format=LogFormat.CONSOLE)


async def bench_ours(database_url: str, count: int, *, postgres: bool) -> list[Figure]:
    engine = create_engine(database_url)
    await migrate(engine)
    settings = Settings(
        database_url=database_url,
        http_host="127.0.0.1",
        http_port=0,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        # A benchmark sends faster than a station may: no flood limit here.
        station_message_rate=0,
    )
    csms = Csms(settings, engine=engine)
    try:
        importer = StationImporter(create_sessionmaker(engine), clock=csms.clock)
        await importer.import_rows(
            [
                StationRow(
                    line=index,
                    station_id=station_id,
                    latitude=None,
                    longitude=None,
                    name=None,
                    password=PASSWORD,
                )
                for index, station_id in enumerate(
                    (
                        "BENCH-16",
                        "BENCH-201",
                        *(f"BENCH-16-{n:02d}" for n in range(TOGETHER)),
                        *(f"BENCH-201-{n:02d}" for n in range(TOGETHER)),
                    ),
                    2,
                )
            ]
        )
        customer = await csms.customers.register(
            "bench@example.com", password="bench-customer-password", name="Bench"
        )
        token = (await csms.customers.get_primary_token(customer.id)).value
        return await _drive_ours(csms, token, count, postgres=postgres)
    finally:
        await engine.dispose()


async def _connect(
    csms: Csms, station_id: str, version: OcppVersion
) -> StationConnection:
    """What the gateway does between the handshake and the first frame."""
    outcome = await csms.stations.mark_connected(station_id, ocpp_version=version.value)
    return StationConnection(
        # handle_frame never touches the socket: frames come from this loop.
        socket=cast(Any, None),
        link=StationLink(
            station_id=station_id,
            version=version,
            booted=outcome.booted,
            state=StationState(outcome.state),
        ),
        log=structlog.get_logger("csms.ocpp").bind(
            station_id=station_id, ocpp_version=version.value
        ),
        rate=MessageRateLimiter(rate=0, burst=1, patience=1, now=time.monotonic()),
    )


async def _drive_ours(
    csms: Csms, token: str, count: int, *, postgres: bool
) -> list[Figure]:
    gateway = csms.gateway
    figures: list[Figure] = []
    station16 = await _connect(csms, "BENCH-16", OcppVersion.V16)
    station201 = await _connect(csms, "BENCH-201", OcppVersion.V201)
    ids = iter(range(10**9))

    async def call(connection: StationConnection, action: str, payload: Any) -> str:
        reply = await gateway.handle_frame(
            connection, _frame(next(ids), action, payload)
        )
        _check(action, reply)
        assert reply is not None
        return reply

    await call(
        station16,
        "BootNotification",
        {"chargePointVendor": "Bench", "chargePointModel": "B-16"},
    )
    await call(
        station201,
        "BootNotification",
        {
            "chargingStation": {"vendorName": "Bench", "model": "B-201"},
            "reason": "PowerUp",
        },
    )

    async def heartbeat16(index: int) -> str | None:
        return await gateway.handle_frame(station16, _frame(index, "Heartbeat", {}))

    async def authorize16(index: int) -> str | None:
        return await gateway.handle_frame(
            station16, _frame(index, "Authorize", {"idTag": token})
        )

    started = orjson.loads(
        await call(
            station16,
            "StartTransaction",
            {"connectorId": 1, "idTag": token, "meterStart": 0, "timestamp": _now()},
        )
    )
    transaction_id = int(started[2]["transactionId"])

    async def meter_values16(index: int) -> str | None:
        payload = _meter_values_16(transaction_id, 1000 * (index + 1))
        return await gateway.handle_frame(
            station16, _frame(10**6 + index, "MeterValues", payload)
        )

    async def heartbeat201(index: int) -> str | None:
        return await gateway.handle_frame(station201, _frame(index, "Heartbeat", {}))

    transaction201 = "bench-transaction-0001"
    await call(
        station201,
        "TransactionEvent",
        _transaction_event(transaction201, "Started", 0, 0, token),
    )

    async def updated201(index: int) -> str | None:
        payload = _transaction_event(
            transaction201, "Updated", index + 1, 1000 * (index + 1), token
        )
        return await gateway.handle_frame(
            station201, _frame(10**6 + index, "TransactionEvent", payload)
        )

    for label, send in (
        ("1.6 Heartbeat", heartbeat16),
        ("1.6 Authorize", authorize16),
        ("1.6 MeterValues (7 samples)", meter_values16),
        ("2.0.1 Heartbeat", heartbeat201),
        ("2.0.1 TransactionEvent Updated", updated201),
    ):
        figures.append(await measure(label, send, count, watch_postgres=postgres))

    # A charge's start and stop, in pairs on connector 1 (fewer: each opens
    # and closes a record).
    pairs = max(50, count // 10)
    meter = 10**7

    async def start_stop(index: int) -> str | None:
        nonlocal meter
        meter += 1000
        reply = await gateway.handle_frame(
            station16,
            _frame(
                2 * 10**6 + 2 * index,
                "StopTransaction",
                {
                    "transactionId": transaction_ids[-1],
                    "meterStop": meter,
                    "timestamp": _now(),
                },
            ),
        )
        _check("StopTransaction", reply)
        started = await gateway.handle_frame(
            station16,
            _frame(
                2 * 10**6 + 2 * index + 1,
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": token,
                    "meterStart": meter,
                    "timestamp": _now(),
                },
            ),
        )
        assert started is not None
        transaction_ids.append(int(orjson.loads(started)[2]["transactionId"]))
        return started

    transaction_ids = [transaction_id]
    for version in (OcppVersion.V16, OcppVersion.V201):
        figures.append(await _together(csms, token, count, version, postgres=postgres))
    pair = await measure(
        "1.6 StopTransaction + StartTransaction",
        start_stop,
        pairs,
        watch_postgres=postgres,
    )
    figures.append(
        Figure(
            "1.6 Start or Stop (half a pair)",
            pair.messages * 2,
            pair.cpu_us / 2,
            pair.wall_us / 2,
            None if pair.database_cpu_us is None else pair.database_cpu_us / 2,
        )
    )
    return figures


async def _together(
    csms: Csms, token: str, count: int, version: OcppVersion, *, postgres: bool
) -> Figure:
    """``TOGETHER`` charging stations send a meter reading each at once (1.6
    MeterValues, 2.0.1 TransactionEvent Updated), round after round; per
    message."""
    gateway = csms.gateway
    v16 = version is OcppVersion.V16
    prefix = "BENCH-16" if v16 else "BENCH-201"
    stations: list[tuple[StationConnection, int | str]] = []
    for number in range(TOGETHER):
        connection = await _connect(csms, f"{prefix}-{number:02d}", version)
        boot = (
            {"chargePointVendor": "Bench", "chargePointModel": "B-16"}
            if v16
            else {
                "chargingStation": {"vendorName": "Bench", "model": "B-201"},
                "reason": "PowerUp",
            }
        )
        await gateway.handle_frame(connection, _frame(1, "BootNotification", boot))
        if v16:
            started = await gateway.handle_frame(
                connection,
                _frame(
                    2,
                    "StartTransaction",
                    {
                        "connectorId": 1,
                        "idTag": token,
                        "meterStart": 0,
                        "timestamp": _now(),
                    },
                ),
            )
            assert started is not None
            transaction: int | str = int(orjson.loads(started)[2]["transactionId"])
        else:
            transaction = f"bench-together-{number:02d}"
            _check(
                "TransactionEvent",
                await gateway.handle_frame(
                    connection,
                    _frame(
                        2,
                        "TransactionEvent",
                        _transaction_event(transaction, "Started", 0, 0, token),
                    ),
                ),
            )
        stations.append((connection, transaction))

    def reading(transaction: int | str, index: int) -> tuple[str, dict[str, Any]]:
        meter = 1000 * (index + 1)
        if isinstance(transaction, int):
            return "MeterValues", _meter_values_16(transaction, meter)
        return "TransactionEvent", _transaction_event(
            transaction, "Updated", index + 1, meter, token
        )

    async def round_of_readings(index: int) -> str | None:
        replies = await asyncio.gather(
            *(
                gateway.handle_frame(
                    connection, _frame(10**6 + index, *reading(transaction, index))
                )
                for connection, transaction in stations
            )
        )
        for reply in replies:
            _check("a reading", reply)
        return replies[-1]

    rounds = max(WARMUP, count // TOGETHER)
    figure = await measure("rounds", round_of_readings, rounds, watch_postgres=postgres)
    label = "1.6 MeterValues" if v16 else "2.0.1 TransactionEvent Updated"
    return Figure(
        f"{label}, {TOGETHER} at once",
        figure.messages * TOGETHER,
        figure.cpu_us / TOGETHER,
        figure.wall_us / TOGETHER,
        None if figure.database_cpu_us is None else figure.database_cpu_us / TOGETHER,
    )


# -- the `ocpp` package ------------------------------------------------------------


class _MemoryConnection:
    """Stands in for a socket: keeps the last frame the charge point sent."""

    def __init__(self) -> None:
        self.last: str | None = None

    async def send(self, message: str) -> None:
        self.last = message

    async def recv(self) -> str:
        raise RuntimeError("frames are routed directly in this benchmark")


async def bench_package(count: int) -> list[Figure]:
    connection16 = _MemoryConnection()
    connection201 = _MemoryConnection()
    central16 = CentralSystem16("BENCH-16", connection16)
    central201 = CentralSystem201("BENCH-201", connection201)

    def sender(
        central: Any, connection: _MemoryConnection, build: Callable[[int], str]
    ) -> Callable[[int], Awaitable[str | None]]:
        async def send(index: int) -> str | None:
            connection.last = None
            await central.route_message(build(index))
            return connection.last

        return send

    cases: list[tuple[str, Callable[[int], Awaitable[str | None]]]] = [
        (
            "1.6 Heartbeat",
            sender(central16, connection16, lambda i: _frame(i, "Heartbeat", {})),
        ),
        (
            "1.6 Authorize",
            sender(
                central16,
                connection16,
                lambda i: _frame(i, "Authorize", {"idTag": "04E8D2A1B3C4"}),
            ),
        ),
        (
            "1.6 MeterValues (7 samples)",
            sender(
                central16,
                connection16,
                lambda i: _frame(i, "MeterValues", _meter_values_16(42, 1000 * i)),
            ),
        ),
        (
            "2.0.1 Heartbeat",
            sender(central201, connection201, lambda i: _frame(i, "Heartbeat", {})),
        ),
        (
            "2.0.1 TransactionEvent Updated",
            sender(
                central201,
                connection201,
                lambda i: _frame(
                    i,
                    "TransactionEvent",
                    _transaction_event("t-1", "Updated", i + 1, 1000 * i, "04E8D2A1"),
                ),
            ),
        ),
    ]
    return [
        await measure(label, send, count, watch_postgres=False) for label, send in cases
    ]


# -- databases and the command -----------------------------------------------------


async def run_ours(database: str, count: int, admin_url: str) -> list[Figure]:
    if database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="csms-bench-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'csms.sqlite3'}"
            return await bench_ours(url, count, postgres=False)
    name = f"csms_bench_messages_{os.getpid()}"
    await fetch_value(admin_url, f"DROP DATABASE IF EXISTS {name}")
    await fetch_value(admin_url, f"CREATE DATABASE {name}")
    try:
        url = (
            make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        )
        return await bench_ours(url, count, postgres=True)
    finally:
        await fetch_value(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def print_machine(admin_url: str, postgres: bool) -> None:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    print(f"machine: {platform.platform()}, {model}, {os.cpu_count()} cores")
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}")
    # The machine may be shared: other work running at the same time shows here.
    print(f"load average {', '.join(f'{value:.1f}' for value in os.getloadavg())}")
    packages = ("ocpp", "websockets", "sqlalchemy", "asyncpg", "aiosqlite", "orjson")
    print(", ".join(f"{name} {importlib.metadata.version(name)}" for name in packages))
    if postgres:
        print(
            f"postgresql {asyncio.run(fetch_value(admin_url, 'SHOW server_version'))}"
        )


def print_table(
    title: str, figures: list[Figure], reference: dict[str, Figure]
) -> None:
    print()
    print(title)
    header = (
        f"{'message':<40}{'CPU µs':>9}{'wall µs':>9}{'DB CPU µs':>11}{'÷ ocpp CPU':>12}"
    )
    print(header)
    print("-" * len(header))
    for figure in figures:
        database = (
            "-" if figure.database_cpu_us is None else f"{figure.database_cpu_us:.0f}"
        )
        theirs = reference.get(figure.label)
        ratio = "-" if theirs is None else f"{figure.cpu_us / theirs.cpu_us:.2f}x"
        print(
            f"{figure.label:<40}{figure.cpu_us:>9.0f}{figure.wall_us:>9.0f}"
            f"{database:>11}{ratio:>12}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database", choices=("sqlite", "postgres", "both"), default="both"
    )
    parser.add_argument("--messages", type=int, default=2000)
    arguments = parser.parse_args()
    admin_url = os.environ.get("CSMS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    databases = (
        ("sqlite", "postgres")
        if arguments.database == "both"
        else (arguments.database,)
    )
    print_machine(admin_url, "postgres" in databases)
    print(f"{arguments.messages} messages each, one after another, after {WARMUP}")

    results: dict[str, list[Figure]] = {}
    with quiet_json_logs():
        package = asyncio.run(bench_package(arguments.messages))
        for database in databases:
            results[database] = asyncio.run(
                run_ours(database, arguments.messages, admin_url)
            )
    reference = {figure.label: figure for figure in package}
    print_table("the `ocpp` package (route_message, no persistence)", package, {})
    for database, figures in results.items():
        print_table(f"ours (Gateway.handle_frame) on {database}", figures, reference)
    line = {
        "package": {f.label: round(f.cpu_us, 1) for f in package},
        **{
            database: {
                f.label: {
                    "cpu_us": round(f.cpu_us, 1),
                    "wall_us": round(f.wall_us, 1),
                    "database_cpu_us": None
                    if f.database_cpu_us is None
                    else round(f.database_cpu_us, 1),
                }
                for f in figures
            }
            for database, figures in results.items()
        },
    }
    print()
    print(orjson.dumps(line).decode())


if __name__ == "__main__":
    main()
