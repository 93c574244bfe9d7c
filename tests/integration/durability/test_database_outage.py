"""A database outage: stations are shut out until it is back, nothing is lost.

These tests own a PostgreSQL cluster (initdb in a temporary directory) and stop
it under a running CSMS.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
import websockets
from sqlalchemy import text
from websockets.asyncio.client import ClientConnection

from csms.app import Csms
from csms.db.engine import create_engine
from csms.db.migrate import migrate
from csms.settings import Settings

from support.clock import ManualClock
from support.frames import boot, receive_frame, send_call
from support.polling import eventually
from support.scratch_postgres import ScratchCluster, find_postgres_bin
from support.stations import V201, basic_auth, open_socket
from support.transactions import journal_of, only_record_of, transaction_event

# Starts its own PostgreSQL server (~3 s): deselect with -m "not postgres".
pytestmark = pytest.mark.postgres

STATION = "CP-OUT"
PASSWORD = "station-password-0009"


@pytest.fixture
def cluster() -> Iterator[ScratchCluster]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found in /usr/lib/postgresql")
    if shutil.which("runuser") is None:
        pytest.skip("runuser is needed to run initdb as the postgres user")
    # The server default is asynchronous commit: the CSMS must override it.
    created = ScratchCluster.create(bin_dir, server_options="-c synchronous_commit=off")
    created.start()
    try:
        yield created
    finally:
        created.destroy()


@pytest.fixture
async def outage_csms(
    cluster: ScratchCluster, clock: ManualClock
) -> AsyncIterator[Csms]:
    engine = create_engine(cluster.url)
    await migrate(engine)
    await engine.dispose()
    settings = Settings(
        database_url=cluster.url,
        http_host="127.0.0.1",
        http_port=0,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        liveness_check_interval=timedelta(hours=1),
        database_probe_interval=timedelta(seconds=0.2),
    )
    app = Csms(settings, clock=clock)
    await app.start()
    await app.stations.register(STATION, password=PASSWORD, latitude=0, longitude=0)
    try:
        yield app
    finally:
        await app.stop()


async def _connect(app: Csms) -> ClientConnection:
    return await open_socket(
        f"ws://127.0.0.1:{app.ocpp_port}/ocpp/{STATION}",
        headers=basic_auth(STATION, PASSWORD),
        subprotocols=[V201],
    )


async def _send_and_receive(socket: ClientConnection, frame: list[Any]) -> Any:
    await socket.send(orjson.dumps(frame).decode())
    return await receive_frame(socket, timeout=10)


async def test_the_csms_commits_synchronously_whatever_the_server_default(
    outage_csms: Csms,
) -> None:
    async with outage_csms.engine.connect() as connection:
        setting = await connection.scalar(text("SHOW synchronous_commit"))

    assert setting == "on"


async def test_a_database_outage_shuts_stations_out_and_loses_nothing(
    outage_csms: Csms, cluster: ScratchCluster, clock: ManualClock
) -> None:
    now = clock.now()
    update = transaction_event("Updated", 1, at=now, wh=2500)
    socket = await _connect(outage_csms)
    await boot(socket, V201)
    await send_call(
        socket, "TransactionEvent", transaction_event("Started", 0, at=now, wh=1000)
    )

    await asyncio.to_thread(cluster.stop)

    # Sent while the database is down: never acknowledged, the link closed
    # (by the failed message, or already by the probe that noticed first).
    with pytest.raises(websockets.ConnectionClosed):
        await _send_and_receive(socket, [2, "lost-1", "TransactionEvent", update])
    assert socket.close_code == 1011

    # New connections are refused before anything touches the database.
    async def refused_with_503() -> bool:
        try:
            await (await _connect(outage_csms)).close()
        except websockets.InvalidStatus as exc:
            return exc.response.status_code == 503
        return False

    await eventually(refused_with_503)

    await asyncio.to_thread(cluster.start)

    async def reconnected() -> ClientConnection | None:
        try:
            return await _connect(outage_csms)
        except websockets.InvalidStatus:
            return None

    again: ClientConnection | None = None

    async def back() -> bool:
        nonlocal again
        again = await reconnected()
        return again is not None

    await eventually(back, timeout=10)
    assert again is not None
    await boot(again, V201)
    answer = await send_call(again, "TransactionEvent", update, message_id="lost-2")
    await again.close()

    rows = await journal_of(outage_csms, STATION)
    record = await only_record_of(outage_csms, STATION)
    assert answer == [3, "lost-2", {}]
    assert [(r.seq_no, r.message_id) for r in rows] == [
        (0, rows[0].message_id),
        (1, "lost-2"),
    ]
    assert record.energy_wh == 1500
