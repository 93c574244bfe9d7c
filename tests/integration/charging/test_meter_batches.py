"""1.6 MeterValues and 2.0.1 Updated events of many stations arriving together
share transactions: each is still applied once and journaled once, and a
resend (of a message in the journal, or of one in the same batch) is journaled
as a duplicate only."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from csms.app import Csms
from csms.charging.journal import Received, TransactionMessage
from csms.charging.models import ChargeDetailRecord
from csms.db.engine import create_sessionmaker
from csms.ocpp.framing import OcppVersion

from support.clock import ManualClock
from support.transactions import energy_16, transaction_event

STATIONS = 12


def _received(message_id: str, payload: dict[str, Any], at: datetime) -> Received:
    return Received(
        message_id=message_id, version=OcppVersion.V16, payload=payload, received_at=at
    )


async def _meter_values(
    csms: Csms, station_id: str, transaction_id: int, *, wh: int, at: datetime
) -> Received:
    meter_values = energy_16(wh, at)
    received = _received(f"{station_id}-{wh}", {"meterValue": meter_values}, at)
    await csms.charging.meter_values_16(
        station_id,
        transaction_id=transaction_id,
        meter_values=meter_values,
        received=received,
    )
    return received


async def test_meter_values_arriving_together_share_commits_and_apply_once(
    csms: Csms, clock: ManualClock
) -> None:
    start = clock.now()
    transactions: dict[str, int] = {}
    for number in range(STATIONS):
        station_id = f"CP-{number}"
        await csms.stations.register(station_id, password="station-password-0001")
        started = await csms.charging.start_transaction_16(
            station_id,
            connector_id=1,
            id_tag=f"CARD-{number}",
            meter_start=1000,
            timestamp=start,
            received=_received(f"start-{number}", {"n": number}, start),
        )
        transactions[station_id] = started.transaction_id
    messages_before, commits_before = csms.charging.group_commits["MeterValues"]
    first = start + timedelta(minutes=1)

    # Every station at once, and CP-0's message twice (a resend while its
    # first try still waits in the queue).
    meter_values = energy_16(1500, first)
    resent = _received("CP-0-1500", {"meterValue": meter_values}, first)
    await asyncio.gather(
        *(
            _meter_values(csms, station_id, transaction_id, wh=1500, at=first)
            for station_id, transaction_id in transactions.items()
        ),
        csms.charging.meter_values_16(
            "CP-0",
            transaction_id=transactions["CP-0"],
            meter_values=meter_values,
            received=resent,
        ),
    )
    # Then again, with CP-1's first message resent from the journal.
    second = start + timedelta(minutes=2)
    await asyncio.gather(
        *(
            _meter_values(csms, station_id, transaction_id, wh=2500, at=second)
            for station_id, transaction_id in transactions.items()
            if station_id != "CP-1"
        ),
        _meter_values(csms, "CP-1", transactions["CP-1"], wh=1500, at=first),
    )
    messages, commits = csms.charging.group_commits["MeterValues"]

    async with create_sessionmaker(csms.engine)() as session:
        energies = {
            record.station_id: record.energy_wh
            for record in await session.scalars(select(ChargeDetailRecord))
        }
        journal = (
            await session.execute(
                select(TransactionMessage.station_id, TransactionMessage.duplicate)
                .where(TransactionMessage.action == "MeterValues")
                .order_by(TransactionMessage.id)
            )
        ).all()

    assert messages - messages_before == 2 * STATIONS + 1
    assert commits - commits_before < messages - messages_before
    assert energies == {
        station_id: 500 if station_id == "CP-1" else 1500 for station_id in transactions
    }
    assert len(journal) == 2 * STATIONS + 1
    assert sorted(station for station, duplicate in journal if duplicate) == [
        "CP-0",
        "CP-1",
    ]


async def _event(
    csms: Csms, station_id: str, seq_no: int, *, wh: int, at: datetime, copy: int = 0
) -> None:
    payload = transaction_event(
        "Updated" if seq_no else "Started",
        seq_no,
        at=at,
        transaction_id=f"TX-{station_id}",
        wh=wh,
    )
    received = Received(
        message_id=f"{station_id}-{seq_no}-{copy}",
        version=OcppVersion.V201,
        payload=payload,
        received_at=at,
    )
    await csms.charging.transaction_event_201(station_id, payload, received=received)


async def test_updated_events_arriving_together_share_commits_and_apply_once(
    csms: Csms, clock: ManualClock
) -> None:
    start = clock.now()
    stations = [f"CS-{number}" for number in range(STATIONS)]
    for station_id in stations:
        await csms.stations.register(station_id, password="station-password-0001")
        await _event(csms, station_id, 0, wh=1000, at=start)
    await csms.stations.register("CS-NEW", password="station-password-0001")
    # A transaction nobody heard start: not for the batch, it opens a record.
    unknown_at = start + timedelta(seconds=30)
    events_before, commits_before = csms.charging.group_commits[
        "TransactionEvent Updated"
    ]

    first = start + timedelta(minutes=1)
    await asyncio.gather(
        *(_event(csms, station_id, 1, wh=1500, at=first) for station_id in stations),
        # CS-0's event again under another message id: same seqNo, a retry.
        _event(csms, "CS-0", 1, wh=1500, at=first, copy=1),
        _event(csms, "CS-NEW", 1, wh=700, at=unknown_at),
    )
    second = start + timedelta(minutes=2)
    await asyncio.gather(
        # CS-1 skips seqNo 2: its record shows the gap.
        _event(csms, "CS-1", 3, wh=2500, at=second),
        # CS-2's first event again, from the journal this time.
        _event(csms, "CS-2", 1, wh=1500, at=first, copy=2),
        *(
            _event(csms, station_id, 2, wh=2500, at=second)
            for station_id in stations
            if station_id not in ("CS-1", "CS-2")
        ),
    )
    events, commits = csms.charging.group_commits["TransactionEvent Updated"]

    async with create_sessionmaker(csms.engine)() as session:
        records = {
            record.station_id: record
            for record in await session.scalars(select(ChargeDetailRecord))
        }
        duplicates = (
            await session.scalars(
                select(TransactionMessage.station_id).where(
                    TransactionMessage.action == "TransactionEvent",
                    TransactionMessage.duplicate.is_(True),
                )
            )
        ).all()

    assert events - events_before == 2 * STATIONS + 2
    assert commits - commits_before < events - events_before
    assert {station_id: records[station_id].energy_wh for station_id in stations} == {
        station_id: 500 if station_id == "CS-2" else 1500 for station_id in stations
    }
    assert sorted(duplicates) == ["CS-0", "CS-2"]
    assert [
        station_id
        for station_id in stations
        if "sequence_gap" in records[station_id].flags
    ] == ["CS-1"]
    # Left to the path of its own transaction, which opened its record.
    assert "sequence_gap" in records["CS-NEW"].flags
