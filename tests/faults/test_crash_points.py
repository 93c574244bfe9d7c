"""The CSMS dies exactly before or exactly after the commit of a transaction
message (``CSMS_CRASH_AT``), is started again on the same database and ports,
and the station's resend settles it: a message lost before its commit is
applied once, one stored before its answer is journaled again as a duplicate
and not applied twice. Either way the charge ends Finished, once, with the
energy the station's meter measured."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from csms.charging.journal import TransactionMessage
from csms.clock import SystemClock
from csms.db.engine import create_engine, create_sessionmaker
from csms.faults import CRASH_EXIT_CODE
from csms.simulator.station import V16, V201, run_station
from csms.stations.service import StationService

from support.customers import register_customer
from support.faults import (
    FAULTY,
    assert_stored_exactly_once,
    performed,
    stored_records,
)
from support.process import CsmsProcess, start_csms

STATION_ID = "CP-1"
PASSWORD = "station-password-0001"
RECOVERY = {
    "CSMS_RESYNC_DELAY": "PT0.2S",
    "CSMS_RESYNC_GRACE": "PT1S",
    "CSMS_LIVENESS_CHECK_INTERVAL": "PT0.3S",
}
# Every case crashes on the first message of its action the station sends.
CASES = [
    pytest.param(
        version,
        action,
        stage,
        id=f"{label}-{action}-{stage}",
    )
    for version, label, action in [
        (V16, "1.6", "StartTransaction"),
        (V16, "1.6", "MeterValues"),
        (V16, "1.6", "StopTransaction"),
        (V201, "2.0.1", "TransactionEvent"),
    ]
    for stage in ("before_commit", "after_commit")
]


async def _register_station(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        stations = StationService(create_sessionmaker(engine), clock=SystemClock())
        await stations.register(STATION_ID, password=PASSWORD)
    finally:
        await engine.dispose()


async def _journal(database_url: str, action: str) -> list[TransactionMessage]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            query = (
                select(TransactionMessage)
                .where(
                    TransactionMessage.station_id == STATION_ID,
                    TransactionMessage.action == action,
                )
                .order_by(TransactionMessage.id)
            )
            return list((await session.scalars(query)).all())
    finally:
        await engine.dispose()


async def _charge_until_crash(
    first: CsmsProcess, station: Any, id_token: str, action: str
) -> Awaitable[Any] | None:
    """Drive the station to the crash point; returns what is still under way
    (the start or the stop the dead CSMS never answered)."""
    pending: asyncio.Task[Any] | None = None
    if action in ("StartTransaction", "TransactionEvent"):
        pending = asyncio.create_task(station.plug_in_and_charge(id_token))
    else:
        await station.plug_in_and_charge(id_token)
        if action == "StopTransaction":
            # A few meter values first, so that the stop has energy to settle.
            await asyncio.sleep(0.3)
            pending = asyncio.create_task(station.stop_locally(1))
    # MeterValues: the first periodic reading, 0.1 s in, is the crash.

    exit_code = await asyncio.wait_for(first.process.wait(), 10)
    assert exit_code == CRASH_EXIT_CODE, first.log.decode()
    return pending


@pytest.mark.parametrize(("version", "action", "stage"), CASES)
async def test_a_crash_at_a_commit_is_settled_by_the_stations_resend(
    version: str, action: str, stage: str, database_url: str
) -> None:
    await _register_station(database_url)
    first = await start_csms(
        database_url, extra_env={**RECOVERY, "CSMS_CRASH_AT": f"{stage}:{action}"}
    )
    second: CsmsProcess | None = None
    try:
        async with httpx.AsyncClient(base_url=first.http_url, timeout=10) as http:
            customer = await register_customer(http)

        async with run_station(
            first.ocpp_url, STATION_ID, PASSWORD, version=version, options=FAULTY
        ) as station:
            pending = await _charge_until_crash(
                first, station, customer.id_token, action
            )

            # The crash point is where it claims to be: the message is stored
            # after the commit only.
            stored_before_restart = await _journal(database_url, action)
            assert len(stored_before_restart) == (stage == "after_commit")

            second = await start_csms(
                database_url,
                http_port=first.http_port,
                ocpp_port=first.ocpp_port,
                extra_env=RECOVERY,
            )
            if pending is not None:
                await asyncio.wait_for(pending, 10)
            if action != "StopTransaction":
                await asyncio.sleep(0.3)
                await station.stop_locally(1)
            await asyncio.wait_for(station.drained(), 10)

        assert len(station.history) == 1
        assert_stored_exactly_once(
            performed(STATION_ID, station.history),
            await stored_records(database_url, [STATION_ID]),
        )
        # The crashed message is the first of its action the station sent.
        journal = await _journal(database_url, action)
        crashed = journal[0].message_id
        copies = [entry.duplicate for entry in journal if entry.message_id == crashed]
        if stage == "before_commit":
            # Nothing of it was stored: its resend is what was applied.
            assert copies == [False]
            assert not any(entry.duplicate for entry in journal)
        else:
            assert crashed == stored_before_restart[0].message_id
            assert copies == [False, True]
            assert sum(entry.duplicate for entry in journal) == 1
    finally:
        for process in (first, second):
            if process is not None and process.process.returncode is None:
                await process.kill()
