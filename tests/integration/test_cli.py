"""The ``csms`` command, run as the installed script in a subprocess.

SQLite only: these tests exercise the command line (arguments, output, exit
codes), not the database. The services the commands call are already tested on
both databases, and a subprocess cannot share the per-test PostgreSQL copy that
the ``database_url`` fixture manages inside the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from csms.clock import SystemClock
from csms.db.engine import create_engine, create_sessionmaker
from csms.operators.service import OperatorIdentity, OperatorService

CSMS = Path(sys.executable).parent / "csms"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"


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


@pytest.fixture
def migrated(database_url: str) -> str:
    result = _csms(database_url, "migrate")
    assert result.returncode == 0, result.stderr
    return database_url


async def _authenticate(database_url: str, token: str) -> OperatorIdentity | None:
    engine = create_engine(database_url)
    try:
        operators = OperatorService(create_sessionmaker(engine), clock=SystemClock())
        return await operators.authenticate(token)
    finally:
        await engine.dispose()


def test_migrate_creates_the_schema(database_url: str, tmp_path: Path) -> None:
    result = _csms(database_url, "migrate")

    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stderr
    assert (tmp_path / "cli.sqlite3").stat().st_size > 0


def test_station_add_prints_a_generated_password_on_stdout(migrated: str) -> None:
    result = _csms(migrated, "station", "add", "CP-X")

    assert result.returncode == 0, result.stderr
    password = result.stdout.strip()
    assert 16 <= len(password) <= 40
    assert "\n" not in password
    assert " " not in password


def test_station_add_of_an_existing_id_fails_with_a_clear_message(
    migrated: str,
) -> None:
    assert _csms(migrated, "station", "add", "CP-X").returncode == 0

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


def test_station_list_shows_every_station(migrated: str) -> None:
    _csms(migrated, "station", "add", "CP-X")
    _csms(
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
