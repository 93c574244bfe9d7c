"""Registering a fleet at once: thousands of stations from one CSV file.

The file has a header and the columns ``id``, ``latitude``, ``longitude``,
``name``, ``password`` and ``security_profile`` (all but ``id`` may be empty or
left out). Every row is checked
before anything is written; one bad row refuses the whole file, with every
problem listed by line, so an operator never ends up with half a fleet.
Passwords left empty are generated, and handed back once.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.clock import Clock
from csms.errors import InvalidInput
from csms.stations.credentials import (
    InvalidPassword,
    generate_password,
    hash_password,
    validate_password,
)
from csms.stations.models import Station
from csms.stations.service import validate_location, validate_station_id
from csms.stations.state import StationState

COLUMNS = ("id", "latitude", "longitude", "name", "password", "security_profile")
_CHUNK = 5_000


@dataclass(frozen=True, slots=True)
class StationRow:
    line: int
    station_id: str
    latitude: float | None
    longitude: float | None
    name: str | None
    password: str | None
    security_profile: int = 1


@dataclass(frozen=True, slots=True)
class ImportResult:
    imported: int
    generated_passwords: dict[str, str]


class ImportRefused(InvalidInput):
    title = "Station import refused"

    def __init__(self, problems: Sequence[str]) -> None:
        shown = "; ".join(problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"Nothing was imported: {shown}{more}")
        self.problems = list(problems)


def parse_csv(text: str) -> list[StationRow]:
    """Read and check every row; raises ImportRefused listing all problems."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "id" not in reader.fieldnames:
        raise ImportRefused(["the first line must be a header naming at least 'id'"])
    unknown = set(reader.fieldnames) - set(COLUMNS)
    if unknown:
        raise ImportRefused([f"unknown columns: {', '.join(sorted(unknown))}"])
    rows: list[StationRow] = []
    problems: list[str] = []
    for record in reader:
        line = reader.line_num
        try:
            rows.append(_parse_row(line, record))
        except (InvalidInput, InvalidPassword, ValueError) as exc:
            problems.append(f"line {line}: {_reason(exc)}")
    problems.extend(find_duplicates(rows))
    if problems:
        raise ImportRefused(problems)
    return rows


def _parse_row(line: int, record: dict[str, Any]) -> StationRow:
    station_id = (record.get("id") or "").strip()
    validate_station_id(station_id)
    latitude = _optional_float(record.get("latitude"), "latitude")
    longitude = _optional_float(record.get("longitude"), "longitude")
    validate_location(latitude, longitude)
    password = (record.get("password") or "").strip() or None
    if password is not None:
        validate_password(password)
    name = (record.get("name") or "").strip() or None
    if name is not None and len(name) > 200:
        raise ValueError("a name has at most 200 characters")
    profile_text = (record.get("security_profile") or "").strip() or "1"
    if profile_text not in {"1", "2", "3"}:
        raise ValueError("security_profile is 1, 2 or 3")
    return StationRow(
        line, station_id, latitude, longitude, name, password, int(profile_text)
    )


def _optional_float(value: str | None, field: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{field} is not a number") from None


def _reason(exc: Exception) -> str:
    return exc.detail if isinstance(exc, InvalidInput) else str(exc)


def find_duplicates(rows: Iterable[StationRow]) -> list[str]:
    first_line: dict[str, int] = {}
    problems = []
    for row in rows:
        if row.station_id in first_line:
            problems.append(
                f"line {row.line}: id {row.station_id} also on line "
                f"{first_line[row.station_id]}"
            )
        else:
            first_line[row.station_id] = row.line
    return problems


class StationImporter:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, clock: Clock
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock

    async def import_rows(self, rows: Sequence[StationRow]) -> ImportResult:
        """Insert every row in one transaction; existing ids refuse the import."""
        generated = {
            row.station_id: generate_password() for row in rows if row.password is None
        }
        hashes = await _hash_all(
            [
                (row.password or generated[row.station_id], row.password is None)
                for row in rows
            ]
        )

        now = self._clock.now()
        table = Station.__table__
        assert isinstance(table, Table)
        values = [
            {
                "id": row.station_id,
                "name": row.name,
                "latitude": row.latitude,
                "longitude": row.longitude,
                "password_hash": password_hash,
                "security_profile": row.security_profile,
                "state": StationState.UNAVAILABLE.value,
                "online": False,
                "created_at": now,
                "updated_at": now,
            }
            for row, password_hash in zip(rows, hashes, strict=True)
        ]
        async with self._sessionmaker() as session:
            existing = await _existing_ids(session, [row.station_id for row in rows])
            if existing:
                raise ImportRefused(
                    [
                        f"id {station_id} is already registered"
                        for station_id in existing
                    ]
                )
            for start in range(0, len(values), _CHUNK):
                await session.execute(insert(table), values[start : start + _CHUNK])
            await session.commit()
        return ImportResult(imported=len(rows), generated_passwords=generated)


async def _hash_all(passwords: Sequence[tuple[str, bool]]) -> list[str]:
    # PBKDF2 releases the GIL while it hashes: one slice per core, in threads.
    workers = max(1, os.cpu_count() or 1)
    size = -(-len(passwords) // workers) or 1
    slices = [passwords[i : i + size] for i in range(0, len(passwords), size)]
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashed = await asyncio.gather(
            *(loop.run_in_executor(pool, _hash_slice, part) for part in slices)
        )
    return [item for part in hashed for item in part]


def _hash_slice(passwords: Sequence[tuple[str, bool]]) -> list[str]:
    return [
        hash_password(password, generated=generated)
        for password, generated in passwords
    ]


async def _existing_ids(session: AsyncSession, station_ids: Sequence[str]) -> list[str]:
    found: list[str] = []
    for start in range(0, len(station_ids), _CHUNK):
        chunk = station_ids[start : start + _CHUNK]
        found.extend(
            (
                await session.scalars(select(Station.id).where(Station.id.in_(chunk)))
            ).all()
        )
    return sorted(found)


def render_passwords_csv(generated: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "password"])
    for station_id, password in generated.items():
        writer.writerow([station_id, password])
    return out.getvalue()
