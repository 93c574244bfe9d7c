"""Helpers the benchmark scripts share (imported as ``common``: each script runs
as ``python benchmarks/<name>.py``, which puts this folder on the path)."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

# A three-phase AC station's readings of one period: (measurand, unit, phase).
_READINGS_16 = [
    ("Energy.Active.Import.Register", "Wh", None),
    ("Power.Active.Import", "W", None),
    ("Current.Import", "A", "L1"),
    ("Current.Import", "A", "L2"),
    ("Current.Import", "A", "L3"),
    ("Voltage", "V", "L1-N"),
    ("SoC", "Percent", None),
]
_VALUES_16 = ["11040", "16.0", "16.1", "15.9", "230.1", "54"]


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    """A SQLAlchemy PostgreSQL URL as asyncpg takes it, on ``database`` if given."""
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


async def fetch_value(url: str, statement: str) -> str:
    """Run one statement on its own connection; its first value, as text."""
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return str(await connection.fetchval(statement))
    finally:
        await connection.close()


def sampled_values_16(meter: str) -> list[dict[str, str]]:
    """Seven 1.6 sampled values, as a three-phase AC station sends each period."""
    sampled = []
    for (measurand, unit, phase), value in zip(
        _READINGS_16, [meter, *_VALUES_16], strict=True
    ):
        entry = {
            "value": value,
            "context": "Sample.Periodic",
            "measurand": measurand,
            "location": "Outlet",
            "unit": unit,
        }
        if phase is not None:
            entry["phase"] = phase
        sampled.append(entry)
    return sampled
