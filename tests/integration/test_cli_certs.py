"""``csms certs`` and ``csms station add --security-profile``, run as the script.

SQLite only, like ``test_cli.py``: these test the command line, not the database.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from csms.clock import SystemClock
from csms.db.engine import create_engine, create_sessionmaker
from csms.stations.service import StationService

from support.databases import SqliteTemplate

CSMS = Path(sys.executable).parent / "csms"


def _csms(*arguments: str, database_url: str = "") -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    if database_url:
        environment["CSMS_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(CSMS), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _common_name(path: Path) -> str:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_certs_init_and_station_write_a_ca_a_server_and_a_station_pair(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "certs"

    init = _csms("certs", "init", "--dir", str(directory), "--host", "csms.test")
    station = _csms("certs", "station", "CP-3", "--dir", str(directory))

    assert init.returncode == 0, init.stderr
    assert station.returncode == 0, station.stderr
    assert f"CSMS_TLS_CERT_FILE={directory / 'server.pem'}" in init.stdout
    assert f"CSMS_TLS_KEY_FILE={directory / 'server.key'}" in init.stdout
    assert f"CSMS_TLS_CA_FILE={directory / 'ca.pem'}" in init.stdout
    assert str(directory / "CP-3.pem") in station.stderr
    assert _common_name(directory / "CP-3.pem") == "CP-3"
    assert _common_name(directory / "server.pem") == "csms.test"
    assert stat.S_IMODE((directory / "CP-3.key").stat().st_mode) == 0o600


def test_certs_init_refuses_to_replace_a_ca(tmp_path: Path) -> None:
    assert _csms("certs", "init", "--dir", str(tmp_path)).returncode == 0
    before = (tmp_path / "ca.pem").read_bytes()

    again = _csms("certs", "init", "--dir", str(tmp_path))

    assert again.returncode == 1
    assert "exists" in again.stderr
    assert "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert (tmp_path / "ca.pem").read_bytes() == before


def test_certs_station_without_a_ca_fails_with_a_clear_message(
    tmp_path: Path,
) -> None:
    result = _csms("certs", "station", "CP-3", "--dir", str(tmp_path))

    assert result.returncode == 1
    assert "no usable development CA" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def migrated(sqlite_template: SqliteTemplate, tmp_path: Path) -> str:
    return sqlite_template.copy_to(tmp_path)


async def _security_profile(database_url: str, station_id: str) -> int:
    engine = create_engine(database_url)
    try:
        stations = StationService(create_sessionmaker(engine), clock=SystemClock())
        return (await stations.get(station_id)).security_profile
    finally:
        await engine.dispose()


def test_station_add_stores_the_security_profile(migrated: str) -> None:
    result = _csms(
        "station", "add", "CP-3", "--security-profile", "3", database_url=migrated
    )

    assert result.returncode == 0, result.stderr
    assert asyncio.run(_security_profile(migrated, "CP-3")) == 3


def test_station_set_security_profile_raises_it(migrated: str) -> None:
    assert _csms("station", "add", "CP-1", database_url=migrated).returncode == 0

    result = _csms(
        "station", "set-security-profile", "CP-1", "2", database_url=migrated
    )

    assert result.returncode == 0, result.stderr
    assert asyncio.run(_security_profile(migrated, "CP-1")) == 2


def test_station_add_refuses_an_unknown_security_profile(migrated: str) -> None:
    result = _csms(
        "station", "add", "CP-4", "--security-profile", "4", database_url=migrated
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
