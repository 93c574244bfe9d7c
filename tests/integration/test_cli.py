"""The ``csms`` command, run as the installed script in a subprocess.

SQLite only: these tests exercise the command line (arguments, output, exit
codes), not the database. The services the commands call are already tested on
both databases by the other tests. Each test starts from a copy of the migrated
SQLite template; what a command stored is checked in-process, and only the
command under test runs as a (slow to start) subprocess.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from csms.clock import SystemClock
from csms.db.engine import create_engine, create_sessionmaker
from csms.operators.service import OperatorIdentity, OperatorService
from csms.stations.models import Station
from csms.stations.service import StationService

from support.databases import SqliteTemplate

CSMS = Path(sys.executable).parent / "csms"

_T = TypeVar("_T")


@pytest.fixture
def empty_database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"


@pytest.fixture
def migrated(sqlite_template: SqliteTemplate, tmp_path: Path) -> str:
    return sqlite_template.copy_to(tmp_path)


def _csms(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "CSMS_DATABASE_URL": database_url}
    return subprocess.run(
        [str(CSMS), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _use_stations(
    database_url: str, work: Callable[[StationService], Awaitable[_T]]
) -> _T:
    engine = create_engine(database_url)
    try:
        return await work(
            StationService(create_sessionmaker(engine), clock=SystemClock())
        )
    finally:
        await engine.dispose()


def _register(database_url: str, station_id: str, **details: Any) -> None:
    async def register(stations: StationService) -> None:
        await stations.register(station_id, **details)

    asyncio.run(_use_stations(database_url, register))


def _get_station(database_url: str, station_id: str) -> Station:
    async def get(stations: StationService) -> Station:
        return await stations.get(station_id)

    return asyncio.run(_use_stations(database_url, get))


async def _authenticate(database_url: str, token: str) -> OperatorIdentity | None:
    engine = create_engine(database_url)
    try:
        operators = OperatorService(create_sessionmaker(engine), clock=SystemClock())
        return await operators.authenticate(token)
    finally:
        await engine.dispose()


def test_migrate_creates_a_schema_stations_can_be_stored_in(
    empty_database_url: str,
) -> None:
    result = _csms(empty_database_url, "migrate")

    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stderr
    _register(empty_database_url, "CP-1")
    assert _get_station(empty_database_url, "CP-1").id == "CP-1"


def test_station_add_prints_a_generated_password_on_stdout(migrated: str) -> None:
    result = _csms(migrated, "station", "add", "CP-X")

    assert result.returncode == 0, result.stderr
    password = result.stdout.strip()
    assert 16 <= len(password) <= 40
    assert "\n" not in password
    assert " " not in password
    assert _get_station(migrated, "CP-X").state == "Unavailable"


def test_station_add_of_an_existing_id_fails_with_a_clear_message(
    migrated: str,
) -> None:
    _register(migrated, "CP-X")

    again = _csms(migrated, "station", "add", "CP-X")

    assert again.returncode == 1
    assert "CP-X" in again.stderr
    assert "already registered" in again.stderr
    assert "Traceback" not in again.stderr
    assert again.stdout == ""


def test_station_add_with_given_password_and_location_prints_no_password(
    migrated: str,
) -> None:
    result = _csms(
        migrated,
        "station",
        "add",
        "CP-Y",
        "--password",
        "given-password-00001",
        "--lat",
        "1",
        "--lon",
        "2",
        "--name",
        "North",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    stored = _get_station(migrated, "CP-Y")
    assert (stored.latitude, stored.longitude, stored.name) == (1.0, 2.0, "North")


def test_station_list_shows_every_station(migrated: str) -> None:
    _register(migrated, "CP-X")
    _register(migrated, "CP-Y", name="North", latitude=1.0, longitude=2.0)

    result = _csms(migrated, "station", "list")

    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0][0] == "id"
    assert rows[1][0] == "CP-X"
    assert rows[1][1:3] == ["Unavailable", "offline"]
    assert rows[2] == [
        "CP-Y",
        "Unavailable",
        "offline",
        "-",
        "1.00000,2.00000",
        "North",
    ]


def test_station_add_with_an_invalid_id_fails_with_a_clear_message(
    migrated: str,
) -> None:
    result = _csms(migrated, "station", "add", "CP:1")

    assert result.returncode == 1
    assert "station id" in result.stderr
    assert "Traceback" not in result.stderr


def test_operator_add_prints_a_token_that_authenticates(migrated: str) -> None:
    result = _csms(migrated, "operator", "add", "a@b.c")

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    identity = asyncio.run(_authenticate(migrated, token))
    assert identity == OperatorIdentity(email="a@b.c")
