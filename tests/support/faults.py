"""For the fault tests: a CSMS whose resync runs within a fraction of a second, and the
checks every fault test ends with — each charge a station performed is stored
exactly once, with the energy the station's own meter measured."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from csms.app import Csms
from csms.charging.models import ChargeDetailRecord
from csms.db.engine import create_engine, create_sessionmaker
from csms.settings import Settings
from csms.simulator.station import Charge, SimulatorOptions

from support.clock import ManualClock

# A minute of simulated time every 0.1 s; a lost answer is resent after 2 s;
# a lost link is retried after 0.05 s, then at most every 0.5 s.
FAULTY = SimulatorOptions(
    meter_interval=60,
    time_factor=600,
    resend_timeout=2,
    reconnect_delay=0.05,
    reconnect_delay_max=0.5,
)
RESYNC_DELAY = timedelta(seconds=0.05)
RESYNC_GRACE = timedelta(seconds=0.5)


@contextlib.asynccontextmanager
async def resyncing(settings: Settings, clock: ManualClock) -> AsyncIterator[Csms]:
    """A CSMS that resyncs a reconnecting station almost at once."""
    app = Csms(
        settings.model_copy(
            update={"resync_delay": RESYNC_DELAY, "resync_grace": RESYNC_GRACE}
        ),
        clock=clock,
    )
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@dataclass(frozen=True)
class PerformedCharge:
    """What a simulated station measured for one charge it finished."""

    station_id: str
    transaction_id: str
    meter_start_wh: int
    meter_stop_wh: int


def performed(station_id: str, history: Iterable[Charge]) -> list[PerformedCharge]:
    charges = []
    for charge in history:
        assert charge.transaction_id is not None
        assert charge.meter_start_wh is not None
        assert charge.meter_stop_wh is not None
        charges.append(
            PerformedCharge(
                station_id=station_id,
                transaction_id=str(charge.transaction_id),
                meter_start_wh=charge.meter_start_wh,
                meter_stop_wh=charge.meter_stop_wh,
            )
        )
    return charges


async def stored_records(
    database_url: str, station_ids: Iterable[str]
) -> list[ChargeDetailRecord]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return list(
                (
                    await session.scalars(
                        select(ChargeDetailRecord).where(
                            ChargeDetailRecord.station_id.in_(list(station_ids))
                        )
                    )
                ).all()
            )
    finally:
        await engine.dispose()


def assert_stored_exactly_once(
    charges: list[PerformedCharge], records: list[ChargeDetailRecord]
) -> None:
    """Every performed charge has one Finished record with its energy; no other."""
    by_key: dict[tuple[str, str | None], list[ChargeDetailRecord]] = {}
    for record in records:
        by_key.setdefault((record.station_id, record.transaction_id), []).append(record)
    for charge in charges:
        found = by_key.get((charge.station_id, charge.transaction_id), [])
        assert len(found) == 1, (charge, found)
        [record] = found
        assert record.state == "Finished", (charge, record.state, record.flags)
        stored = (record.meter_start_wh, record.meter_stop_wh, record.flags)
        assert record.meter_start_wh == charge.meter_start_wh, (charge, stored)
        assert record.meter_stop_wh == charge.meter_stop_wh, (charge, stored)
        assert record.energy_wh == charge.meter_stop_wh - charge.meter_start_wh
    assert len(records) == len(charges), [
        (r.station_id, r.transaction_id, r.state) for r in records
    ]
