"""Durable record writes through our own storage layer, on PostgreSQL.

Run from the project root::

    .venv/bin/python benchmarks/bench_record_writes.py [--writers 1,8,32] \\
        [--seconds 20] [--database postgres|sqlite]

Each writer is a station charging on its own connector: a 1.6 StartTransaction
then a StopTransaction, again and again, through the charging service's OCPP
methods (``ChargingService.start_transaction_16`` / ``stop_transaction_16``) —
what the gateway calls, without the socket. Each call is one transaction that
journals the message and opens or closes the charge record, committed
(``synchronous_commit=on``) before it returns: one durable record write. The
writers run concurrently in one process and share the engine's pool, as the
gateway's connections do.

It prints, per number of writers: record writes (commits) per second, rows
written per second (each call inserts a journal row and inserts or updates a
record), and the latency of a call. Then, when the tree has the batched meter
samples writer (``csms.charging.samples.MeterSampleWriter``), the rows per
second of its ``flush`` for a large batch. The scratch database
(``csms_bench_writes_<pid>`` on ``CSMS_TEST_POSTGRES_URL`` or the local
default, or an SQLite file) is created and dropped by the script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import itertools
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from common import fetch_value
from sqlalchemy import select
from sqlalchemy.engine import make_url

from csms.app import Csms
from csms.charging.journal import Received
from csms.charging.models import ChargeDetailRecord
from csms.db.engine import create_engine, create_sessionmaker
from csms.db.migrate import migrate
from csms.logs import configure_logging
from csms.ocpp.framing import OcppVersion
from csms.settings import LogFormat, Settings
from csms.stations.bulk import StationImporter, StationRow

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
# A journal row for every call, and a record inserted (start) or updated (stop).
ROWS_PER_CALL = 2
SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class WriteFigure:
    writers: int
    seconds: float
    calls: int
    latencies: list[float]
    # Calls that raised, by exception type (a pool timeout, a lost connection).
    errors: Counter[str]

    @property
    def commits_per_second(self) -> float:
        return self.calls / self.seconds

    def latency_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- the database ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def scratch_database(database: str, admin_url: str) -> AsyncIterator[str]:
    if database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="csms-bench-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'csms.sqlite3'}"
        return
    name = f"csms_bench_writes_{os.getpid()}"
    await fetch_value(admin_url, f"DROP DATABASE IF EXISTS {name}")
    await fetch_value(admin_url, f"CREATE DATABASE {name}")
    try:
        yield (
            make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        await fetch_value(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- record writes -----------------------------------------------------------------


def _received(payload: dict[str, Any], message_id: str) -> Received:
    return Received(
        message_id=message_id,
        version=OcppVersion.V16,
        payload=payload,
        received_at=datetime.now(UTC),
    )


async def _charge_again_and_again(
    csms: Csms,
    station_id: str,
    token: str,
    deadline: float,
    latencies: list[float],
    errors: Counter[str],
) -> int:
    """Start and stop charges on the station's connector 1 until the deadline;
    a call that fails is counted, and the writer goes on with the next charge."""
    calls = 0
    meter = 0
    message_ids = itertools.count()
    while time.monotonic() < deadline:
        try:
            calls += await _one_charge(
                csms, station_id, token, meter, message_ids, latencies
            )
        except Exception as exc:
            errors[type(exc).__name__] += 1
        meter += 1000
    return calls


async def _one_charge(
    csms: Csms,
    station_id: str,
    token: str,
    meter: int,
    message_ids: Iterator[int],
    latencies: list[float],
) -> int:
    """One charge: a StartTransaction, then its StopTransaction."""
    charging = csms.charging
    moment = datetime.now(UTC)
    start = {
        "connectorId": 1,
        "idTag": token,
        "meterStart": meter,
        "timestamp": moment.isoformat(),
    }
    began = time.perf_counter()
    outcome = await charging.start_transaction_16(
        station_id,
        connector_id=1,
        id_tag=token,
        meter_start=meter,
        timestamp=moment,
        received=_received(start, f"{next(message_ids):x}"),
    )
    latencies.append(time.perf_counter() - began)
    meter += 1000
    stop = {
        "transactionId": outcome.transaction_id,
        "meterStop": meter,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    began = time.perf_counter()
    await charging.stop_transaction_16(
        station_id,
        transaction_id=outcome.transaction_id,
        meter_stop=meter,
        timestamp=datetime.now(UTC),
        reason="Local",
        received=_received(stop, f"{next(message_ids):x}"),
    )
    latencies.append(time.perf_counter() - began)
    return 2


async def measure_writes(
    csms: Csms, token: str, writers: int, seconds: float
) -> WriteFigure:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    started = time.monotonic()
    deadline = started + seconds
    counts = await asyncio.gather(
        *(
            _charge_again_and_again(
                csms, f"WRITE-{index:04d}", token, deadline, latencies, errors
            )
            for index in range(writers)
        )
    )
    return WriteFigure(
        writers, time.monotonic() - started, sum(counts), latencies, errors
    )


# -- batched meter samples ---------------------------------------------------------


async def measure_samples(csms: Csms, rows: int) -> tuple[int, float] | str:
    """Rows written per flush of the batched sample writer, and its seconds; or
    why it could not be measured."""
    try:
        from csms.charging.samples import MeterSampleWriter, Sample
    except ImportError:
        return "csms.charging.samples is missing in this tree"
    sessionmaker = create_sessionmaker(csms.engine)
    async with sessionmaker() as session:
        record_ids = list(
            (await session.scalars(select(ChargeDetailRecord.id).limit(1000))).all()
        )
    if not record_ids:
        return "no charge records to hang samples on"
    interval = timedelta(minutes=5)
    writer = MeterSampleWriter(sessionmaker, interval=interval, pending_limit=rows * 2)
    per_record = -(-rows // len(record_ids))
    base = datetime.now(UTC) - per_record * interval
    for record_id in record_ids:
        writer.add(
            [
                Sample(
                    record_id=record_id,
                    sampled_at=base + step * interval,
                    meter_wh=1000 * step,
                    power_w=11_000,
                    soc_percent=min(100, step),
                )
                for step in range(per_record)
            ]
        )
    began = time.perf_counter()
    written = await writer.flush()
    return written, time.perf_counter() - began


# -- the command -------------------------------------------------------------------


async def run(database: str, writer_counts: list[int], seconds: float) -> None:
    admin_url = os.environ.get("CSMS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if database == "postgres":
        print(f"postgresql {await fetch_value(admin_url, 'SHOW server_version')}")
    async with scratch_database(database, admin_url) as url:
        engine = create_engine(url)
        await migrate(engine)
        csms = Csms(Settings(database_url=url, http_port=0, ocpp_port=0), engine=engine)
        try:
            importer = StationImporter(create_sessionmaker(engine), clock=csms.clock)
            await importer.import_rows(
                [
                    StationRow(
                        line=index + 2,
                        station_id=f"WRITE-{index:04d}",
                        latitude=None,
                        longitude=None,
                        name=None,
                        password="bench-writes-password-01",
                    )
                    for index in range(max(writer_counts))
                ]
            )
            customer = await csms.customers.register(
                "writes@example.com", password="bench-customer-password", name="Bench"
            )
            token = (await csms.customers.get_primary_token(customer.id)).value
            # Warm the pool and the caches.
            await measure_writes(csms, token, 1, 1.0)

            print()
            header = (
                f"{'writers':>8}{'commits/s':>11}{'rows/s':>9}"
                f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            )
            print(header)
            print("-" * len(header))
            results = []
            for writers in writer_counts:
                figure = await measure_writes(csms, token, writers, seconds)
                results.append(figure)
                print(
                    f"{writers:>8}{figure.commits_per_second:>11.0f}"
                    f"{ROWS_PER_CALL * figure.commits_per_second:>9.0f}"
                    f"{figure.latency_ms(0.5):>9.1f}{figure.latency_ms(0.99):>9.1f}"
                    f"{max(figure.latencies) * 1000:>9.1f}"
                    f"  {dict(figure.errors) or ''}"
                )

            print()
            samples = await measure_samples(csms, SAMPLE_ROWS)
            if isinstance(samples, str):
                print(f"batched meter samples: not measured: {samples}")
                sample_figure: dict[str, Any] = {"missing": samples}
            else:
                written, elapsed = samples
                print(
                    f"batched meter samples: {written} rows in {elapsed:.2f} s, "
                    f"{written / elapsed:.0f} rows/s (MeterSampleWriter.flush)"
                )
                sample_figure = {"rows": written, "rows_per_second": written / elapsed}
        finally:
            await engine.dispose()
    print()
    print(
        orjson.dumps(
            {
                "database": database,
                "writes": [
                    {
                        "writers": figure.writers,
                        "commits_per_second": round(figure.commits_per_second, 1),
                        "rows_per_second": round(
                            ROWS_PER_CALL * figure.commits_per_second, 1
                        ),
                        "p50_ms": round(figure.latency_ms(0.5), 2),
                        "p99_ms": round(figure.latency_ms(0.99), 2),
                        "errors": dict(figure.errors),
                    }
                    for figure in results
                ],
                "samples": sample_figure,
            }
        ).decode()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database", choices=("postgres", "sqlite"), default="postgres"
    )
    parser.add_argument(
        "--writers", default="1,8,32", help="Comma-separated concurrent writers."
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    configure_logging(level="WARNING", log_format=LogFormat.JSON)
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    print(f"machine: {platform.platform()}, {model}, {os.cpu_count()} cores")
    print(f"load average {', '.join(f'{value:.1f}' for value in os.getloadavg())}")
    packages = ("sqlalchemy", "asyncpg", "aiosqlite")
    print(
        f"python {platform.python_version()}, "
        + ", ".join(f"{name} {importlib.metadata.version(name)}" for name in packages)
    )
    writer_counts = [int(value) for value in arguments.writers.split(",")]
    asyncio.run(run(arguments.database, writer_counts, arguments.seconds))


if __name__ == "__main__":
    main()
