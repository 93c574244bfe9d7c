"""Nearby search latency on SQLite and PostgreSQL.

Run from the project root::

    .venv/bin/python benchmarks/bench_nearby.py [--stations 100000] \\
        [--queries 2000] [--database sqlite|postgres|both]

For each database it builds a scratch database with the migrations (an SQLite
file in a temporary folder; a PostgreSQL database ``csms_bench_nearby`` on
``CSMS_TEST_POSTGRES_URL`` or the local default, dropped at the end), bulk-inserts
stations clustered around 50 cities plus uniform noise, runs ANALYZE, and times
``NearbyService.find`` — the whole search, session included — at random points
near the clusters:

- the typical search: 5 km, limit 20;
- the dense case: the largest cap (50 km, limit 100) at the centre of the
  densest city, where the box holds thousands of stations.

It prints latency percentiles, queries per second, how many stations the
bounding box held per query, the plan of one query, and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import create_engine, create_sessionmaker
from csms.db.migrate import migrate
from csms.stations.models import Station
from csms.stations.nearby import (
    NearbyService,
    build_bounding_box,
    build_candidates_query,
)

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SCRATCH_POSTGRES_DATABASE = "csms_bench_nearby"
KM_PER_DEGREE = 111.195
CLUSTERED_SHARE = 0.9
INSERT_BATCH = 5000
WARMUP_QUERIES = 50
DENSE_QUERIES = 200
SEED = 20261203

# (name, latitude, longitude, relative size, spread in km): a city's share of the
# clustered stations follows its size; the spread is one standard deviation.
CITIES: Sequence[tuple[str, float, float, float, float]] = (
    ("Tokyo", 35.68, 139.69, 10, 25),
    ("Shanghai", 31.23, 121.47, 9, 25),
    ("Beijing", 39.90, 116.40, 8, 25),
    ("Shenzhen", 22.54, 114.06, 8, 15),
    ("Guangzhou", 23.13, 113.26, 6, 20),
    ("Seoul", 37.57, 126.98, 6, 15),
    ("Los Angeles", 34.05, -118.24, 7, 30),
    ("New York", 40.71, -74.01, 6, 20),
    ("San Francisco", 37.77, -122.42, 6, 20),
    ("London", 51.51, -0.13, 6, 18),
    ("Paris", 48.86, 2.35, 5, 12),
    ("Berlin", 52.52, 13.40, 5, 12),
    ("Amsterdam", 52.37, 4.90, 5, 10),
    ("Oslo", 59.91, 10.75, 4, 10),
    ("Stockholm", 59.33, 18.07, 3, 10),
    ("Copenhagen", 55.68, 12.57, 3, 8),
    ("Munich", 48.14, 11.58, 3, 10),
    ("Hamburg", 53.55, 9.99, 3, 10),
    ("Madrid", 40.42, -3.70, 3, 12),
    ("Barcelona", 41.39, 2.17, 2, 8),
    ("Rome", 41.90, 12.50, 2, 10),
    ("Milan", 45.46, 9.19, 2, 10),
    ("Vienna", 48.21, 16.37, 2, 8),
    ("Zurich", 47.38, 8.54, 2, 6),
    ("Brussels", 50.85, 4.35, 2, 8),
    ("Warsaw", 52.23, 21.01, 1, 10),
    ("Helsinki", 60.17, 24.94, 1, 8),
    ("Dublin", 53.35, -6.26, 1, 8),
    ("Lisbon", 38.72, -9.14, 1, 8),
    ("Istanbul", 41.01, 28.98, 2, 20),
    ("Dubai", 25.20, 55.27, 2, 15),
    ("Mumbai", 19.08, 72.88, 2, 15),
    ("Delhi", 28.61, 77.21, 2, 20),
    ("Bangalore", 12.97, 77.59, 2, 12),
    ("Singapore", 1.35, 103.82, 3, 10),
    ("Bangkok", 13.76, 100.50, 1, 15),
    ("Jakarta", -6.21, 106.85, 1, 15),
    ("Sydney", -33.87, 151.21, 2, 20),
    ("Melbourne", -37.81, 144.96, 2, 18),
    ("Auckland", -36.85, 174.76, 1, 10),
    ("Toronto", 43.65, -79.38, 3, 18),
    ("Vancouver", 49.28, -123.12, 2, 10),
    ("Montreal", 45.50, -73.57, 2, 12),
    ("Chicago", 41.88, -87.63, 3, 20),
    ("Seattle", 47.61, -122.33, 2, 12),
    ("Austin", 30.27, -97.74, 1, 12),
    ("Mexico City", 19.43, -99.13, 1, 20),
    ("Sao Paulo", -23.55, -46.63, 1, 20),
    ("Santiago", -33.45, -70.67, 1, 12),
    ("Cape Town", -33.92, 18.42, 1, 10),
)


@dataclass(frozen=True)
class Timings:
    label: str
    limit: int
    milliseconds: list[float]
    wall_seconds: float
    results: list[int]
    candidates: list[int]

    def report(self) -> str:
        ordered = sorted(self.milliseconds)

        def percentile(share: float) -> float:
            return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]

        return (
            f"  {self.label}: {len(ordered)} queries, "
            f"{len(ordered) / self.wall_seconds:,.0f} queries/s\n"
            f"    latency ms: p50 {percentile(0.50):.2f}  p95 {percentile(0.95):.2f}  "
            f"p99 {percentile(0.99):.2f}  max {ordered[-1]:.2f}\n"
            f"    stations answered: mean {statistics.fmean(self.results):.1f}, "
            f"{sum(1 for n in self.results if n == self.limit)} queries filled "
            f"the limit\n"
            f"    stations in the box: mean {statistics.fmean(self.candidates):,.0f}  "
            f"p99 {sorted(self.candidates)[int(0.99 * len(self.candidates)) - 1]:,}  "
            f"max {max(self.candidates):,}"
        )


def build_station_rows(count: int, generator: random.Random) -> list[dict[str, object]]:
    weights = [city[3] for city in CITIES]
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    for index in range(count):
        if generator.random() < CLUSTERED_SHARE:
            _, latitude, longitude, _, spread_km = generator.choices(CITIES, weights)[0]
            latitude, longitude = scatter(
                latitude, longitude, spread_km=spread_km, generator=generator
            )
        else:
            latitude = generator.uniform(-55.0, 70.0)
            longitude = generator.uniform(-180.0, 180.0)
        rows.append(
            {
                "id": f"BENCH-{index:07d}",
                "name": f"Bench station {index}",
                "latitude": latitude,
                "longitude": longitude,
                "password_hash": "bench-not-a-real-hash",
                "security_profile": 1,
                "state": "Unavailable",
                "online": False,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def scatter(
    latitude: float, longitude: float, *, spread_km: float, generator: random.Random
) -> tuple[float, float]:
    north_km = generator.gauss(0.0, spread_km)
    east_km = generator.gauss(0.0, spread_km)
    scattered_latitude = max(-90.0, min(90.0, latitude + north_km / KM_PER_DEGREE))
    degrees_east = east_km / (KM_PER_DEGREE * math.cos(math.radians(latitude)))
    scattered_longitude = (longitude + degrees_east + 540.0) % 360.0 - 180.0
    return scattered_latitude, scattered_longitude


def build_query_points(
    count: int, generator: random.Random
) -> list[tuple[float, float]]:
    weights = [city[3] for city in CITIES]
    points = []
    for _ in range(count):
        _, latitude, longitude, _, spread_km = generator.choices(CITIES, weights)[0]
        points.append(
            scatter(latitude, longitude, spread_km=spread_km, generator=generator)
        )
    return points


async def load_stations(engine: AsyncEngine, rows: list[dict[str, object]]) -> float:
    table = Station.__table__
    assert isinstance(table, Table)
    started = time.perf_counter()
    async with engine.begin() as connection:
        for start in range(0, len(rows), INSERT_BATCH):
            await connection.execute(insert(table), rows[start : start + INSERT_BATCH])
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


async def count_candidates(
    engine: AsyncEngine, points: Sequence[tuple[float, float]], *, radius_km: float
) -> list[int]:
    counts = []
    async with engine.connect() as connection:
        for latitude, longitude in points:
            box = build_bounding_box(latitude, longitude, radius_km=radius_km)
            subquery = build_candidates_query(box).subquery()
            counted = await connection.scalar(
                select(func.count()).select_from(subquery)
            )
            counts.append(int(counted or 0))
    return counts


async def time_searches(
    engine: AsyncEngine,
    nearby: NearbyService,
    points: Sequence[tuple[float, float]],
    *,
    label: str,
    radius_km: float,
    limit: int,
) -> Timings:
    for latitude, longitude in points[:WARMUP_QUERIES]:
        await nearby.find(
            latitude=latitude, longitude=longitude, radius_km=radius_km, limit=limit
        )

    milliseconds = []
    results = []
    wall_started = time.perf_counter()
    for latitude, longitude in points:
        started = time.perf_counter()
        found = await nearby.find(
            latitude=latitude, longitude=longitude, radius_km=radius_km, limit=limit
        )
        milliseconds.append((time.perf_counter() - started) * 1000)
        results.append(len(found))
    wall_seconds = time.perf_counter() - wall_started

    candidates = await count_candidates(engine, points, radius_km=radius_km)
    return Timings(label, limit, milliseconds, wall_seconds, results, candidates)


async def explain_one(engine: AsyncEngine, latitude: float, longitude: float) -> str:
    box = build_bounding_box(latitude, longitude, radius_km=5.0)
    sql = build_candidates_query(box).compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
    )
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as connection:
        plan = (await connection.execute(text(explain + str(sql)))).all()
    return "\n".join("    " + " ".join(str(column) for column in row) for row in plan)


async def server_version(engine: AsyncEngine) -> str:
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    async with engine.connect() as connection:
        version = await connection.scalar(text("SHOW server_version"))
    return f"PostgreSQL {version}"


async def run_benchmark(url: str, *, stations: int, queries: int) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        rows = build_station_rows(stations, random.Random(SEED))
        load_seconds = await load_stations(engine, rows)
        print(
            f"{await server_version(engine)}: {stations:,} stations inserted and "
            f"analysed in {load_seconds:.1f} s"
        )

        sessionmaker = create_sessionmaker(engine)
        nearby = NearbyService(sessionmaker, max_radius_km=50.0, max_limit=100)
        points = build_query_points(queries, random.Random(SEED + 1))
        typical = await time_searches(
            engine, nearby, points, label="5 km, limit 20", radius_km=5.0, limit=20
        )
        print(typical.report())

        # The largest city's centre, with the largest radius and limit allowed.
        dense_city = max(CITIES, key=lambda city: city[3])
        centre_points = build_dense_points(dense_city, DENSE_QUERIES)
        dense = await time_searches(
            engine,
            nearby,
            centre_points,
            label=f"dense: 50 km, limit 100, centre of {dense_city[0]}",
            radius_km=50.0,
            limit=100,
        )
        print(dense.report())
        print("  plan of a 5 km search in Berlin:")
        print(await explain_one(engine, 52.52, 13.40))
    finally:
        await engine.dispose()


def build_dense_points(
    city: tuple[str, float, float, float, float], count: int
) -> list[tuple[float, float]]:
    generator = random.Random(SEED + 2)
    _, latitude, longitude, _, _ = city
    return [
        scatter(latitude, longitude, spread_km=1.0, generator=generator)
        for _ in range(count)
    ]


async def run_sqlite(*, stations: int, queries: int) -> None:
    with tempfile.TemporaryDirectory(prefix="csms-bench-nearby-") as folder:
        path = Path(folder) / "bench.sqlite3"
        await run_benchmark(
            f"sqlite+aiosqlite:///{path}", stations=stations, queries=queries
        )


async def run_postgres(*, stations: int, queries: int) -> None:
    admin_url = os.environ.get("CSMS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    admin = create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5}
    )
    drop = f'DROP DATABASE IF EXISTS "{SCRATCH_POSTGRES_DATABASE}" WITH (FORCE)'
    try:
        try:
            async with admin.connect() as connection:
                await connection.execute(text(drop))
                await connection.execute(
                    text(f'CREATE DATABASE "{SCRATCH_POSTGRES_DATABASE}"')
                )
        except (OSError, TimeoutError) as exc:
            print(f"PostgreSQL is not reachable at {admin_url}: {exc}; skipped")
            return
        scratch_url = (
            make_url(admin_url)
            .set(database=SCRATCH_POSTGRES_DATABASE)
            .render_as_string(hide_password=False)
        )
        try:
            await run_benchmark(scratch_url, stations=stations, queries=queries)
        finally:
            async with admin.connect() as connection:
                await connection.execute(text(drop))
    finally:
        await admin.dispose()


def describe_machine() -> str:
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.platform()}, {model}, os.cpu_count() = {os.cpu_count()}, "
        f"Python {platform.python_version()}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stations", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument(
        "--database", choices=["sqlite", "postgres", "both"], default="both"
    )
    arguments = parser.parse_args()

    print(f"Machine: {describe_machine()}")
    print(
        "Load average at start (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(
            *os.getloadavg()
        )
    )
    if arguments.database in ("sqlite", "both"):
        await run_sqlite(stations=arguments.stations, queries=arguments.queries)
    if arguments.database in ("postgres", "both"):
        await run_postgres(stations=arguments.stations, queries=arguments.queries)
    print(
        "Load average at end (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(
            *os.getloadavg()
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
