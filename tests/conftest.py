"""Fixtures: an isolated database per test (SQLite and PostgreSQL), a CSMS started
on ephemeral ports, an HTTP client and registered stations.

Every test that asks for ``database_url`` (directly or through ``csms``) runs
twice: once on SQLite, once on PostgreSQL. Without a reachable PostgreSQL the
PostgreSQL half is skipped with instructions — except under CI (``CI=true``),
where it fails the run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from csms.app import Csms
from csms.logs import configure_logging
from csms.settings import LogFormat, Settings

from support.clock import ManualClock
from support.databases import (
    POSTGRES_HOWTO,
    PostgresTemplate,
    SqliteTemplate,
    postgres_admin_url,
)

OPERATOR_TOKEN = "test-operator-token-that-is-long-enough-0123456789"
IN_CI = os.environ.get("CI", "").lower() == "true"

configure_logging(level="INFO", log_format=LogFormat.CONSOLE)


@dataclass(frozen=True)
class RegisteredStation:
    station_id: str
    password: str


@pytest.fixture(scope="session")
def worker_name(request: pytest.FixtureRequest) -> str:
    """Unique to this run and worker: concurrent runs never share a template."""
    workerinput = getattr(request.config, "workerinput", {})
    run = str(workerinput.get("testrunuid", os.getpid()))[:8]
    return f"{run}_{workerinput.get('workerid', 'main')}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate.build(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_template(worker_name: str) -> Iterator[PostgresTemplate]:
    url = postgres_admin_url()
    if not asyncio.run(PostgresTemplate.reachable(url)):
        message = POSTGRES_HOWTO.format(url=url)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    template = PostgresTemplate(url, worker_name)
    template.build()
    yield template
    template.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def database_backend(
    request: pytest.FixtureRequest,
) -> SqliteTemplate | PostgresTemplate:
    # Session templates are built here, in a plain fixture, outside any event loop.
    name = "sqlite_template" if request.param == "sqlite" else "postgres_template"
    template: SqliteTemplate | PostgresTemplate = request.getfixturevalue(name)
    return template


@pytest.fixture
async def database_url(
    database_backend: SqliteTemplate | PostgresTemplate, tmp_path: Path
) -> AsyncIterator[str]:
    if isinstance(database_backend, SqliteTemplate):
        yield database_backend.copy_to(tmp_path)
        return
    await database_backend.reset()
    yield database_backend.url_of(database_backend.name)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        http_host="127.0.0.1",
        http_port=0,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        operator_bootstrap_token=OPERATOR_TOKEN,  # type: ignore[arg-type]
        # Liveness ticks only when a test asks, with the clock it moves.
        liveness_check_interval=timedelta(hours=1),
        # No resync of a reconnecting station unless a test asks for one.
        resync_delay=timedelta(hours=1),
        # Meter samples reach the database soon after a charge reports them.
        meter_sample_flush_interval=timedelta(milliseconds=200),
    )


@pytest.fixture
async def csms(settings: Settings, clock: ManualClock) -> AsyncIterator[Csms]:
    app = Csms(settings, clock=clock)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
def ocpp_url(csms: Csms) -> str:
    return f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"


@pytest.fixture
async def operator_http(csms: Csms) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{csms.http_port}",
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
async def anonymous_http(csms: Csms) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{csms.http_port}", timeout=10
    ) as client:
        yield client


@pytest.fixture
async def station(csms: Csms) -> RegisteredStation:
    password = "station-password-0001"
    await csms.stations.register(
        "CP-1", password=password, latitude=52.52, longitude=13.4
    )
    return RegisteredStation("CP-1", password)
