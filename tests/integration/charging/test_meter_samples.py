"""Meter samples written by the charging service's sink: downsampled per
charge, written in one batch on flush, and never twice the same."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from csms.app import Csms
from csms.charging.journal import Received
from csms.charging.models import MeterSample
from csms.charging.samples import MeterSampleWriter, Sample
from csms.charging.service import ChargingService
from csms.db.engine import create_sessionmaker
from csms.ocpp.calls import StationNotConnected
from csms.ocpp.framing import OcppVersion

from conftest import RegisteredStation
from support.clock import ManualClock
from support.polling import eventually
from support.transactions import energy_16, transaction_event


class _NoStations:
    """Station commands for a test that only plays the station's side."""

    def version_of(self, station_id: str) -> OcppVersion | None:
        return None

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        raise StationNotConnected(station_id)


def _charging(
    csms: Csms, clock: ManualClock, writer: MeterSampleWriter
) -> ChargingService:
    return ChargingService(
        create_sessionmaker(csms.engine),
        clock=clock,
        customers=csms.customers,
        stations=csms.stations,
        commands=_NoStations(),
        start_timeout=timedelta(seconds=60),
        call_timeout=timedelta(seconds=5),
        samples=writer,
    )


def _received(
    payload: dict[str, Any], at: datetime, version: OcppVersion = OcppVersion.V201
) -> Received:
    return Received(
        message_id=f"m-{at.timestamp()}",
        version=version,
        payload=payload,
        received_at=at,
    )


async def _sample_minutes(csms: Csms, start: datetime) -> list[tuple[int, int | None]]:
    async with create_sessionmaker(csms.engine)() as session:
        samples = await session.scalars(
            select(MeterSample).order_by(MeterSample.sampled_at)
        )
        return [
            (round((sample.sampled_at - start).total_seconds() / 60), sample.meter_wh)
            for sample in samples
        ]


async def test_a_201_charge_keeps_a_sample_each_interval_and_its_last(
    csms: Csms, station: RegisteredStation, clock: ManualClock
) -> None:
    writer = MeterSampleWriter(
        create_sessionmaker(csms.engine), interval=timedelta(minutes=5)
    )
    charging = _charging(csms, clock, writer)
    start = clock.now()

    # A reading a minute for twelve minutes, then the end.
    for minute in range(13):
        at = start + timedelta(minutes=minute)
        event_type = {0: "Started", 12: "Ended"}.get(minute, "Updated")
        payload = transaction_event(event_type, minute, at=at, wh=1000 + 100 * minute)
        await charging.transaction_event_201(
            station.station_id, payload, received=_received(payload, at)
        )
    written = await writer.flush()

    assert written == 4
    assert await _sample_minutes(csms, start) == [
        (0, 1000),
        (5, 1500),
        (10, 2000),
        (12, 2200),
    ]


async def test_a_16_charge_keeps_its_meter_values_and_its_meter_stop(
    csms: Csms, station: RegisteredStation, clock: ManualClock
) -> None:
    writer = MeterSampleWriter(
        create_sessionmaker(csms.engine), interval=timedelta(minutes=5)
    )
    charging = _charging(csms, clock, writer)
    start = clock.now()
    outcome = await charging.start_transaction_16(
        station.station_id,
        connector_id=1,
        id_tag="CARD-1",
        meter_start=1000,
        timestamp=start,
        received=_received({}, start, OcppVersion.V16),
    )

    for minute in range(1, 10):
        at = start + timedelta(minutes=minute)
        meter_values = energy_16(1000 + 100 * minute, at)
        await charging.meter_values_16(
            station.station_id,
            transaction_id=outcome.transaction_id,
            meter_values=meter_values,
            received=_received({"meterValue": meter_values}, at, OcppVersion.V16),
        )
    stop_at = start + timedelta(minutes=10)
    await charging.stop_transaction_16(
        station.station_id,
        transaction_id=outcome.transaction_id,
        meter_stop=2000,
        timestamp=stop_at,
        reason="Local",
        received=_received({"stop": True}, stop_at, OcppVersion.V16),
    )
    await writer.flush()

    assert await _sample_minutes(csms, start) == [(1, 1100), (6, 1600), (10, 2000)]


async def test_a_sample_flushed_twice_is_stored_once(
    csms: Csms, clock: ManualClock
) -> None:
    writer = MeterSampleWriter(create_sessionmaker(csms.engine))
    sample = Sample("r-1", clock.now(), 1000, 7400, 50)

    writer.add([sample], final=True)
    first = await writer.flush()
    writer.add([sample], final=True)
    second = await writer.flush()

    assert (first, second) == (1, 1)
    assert await _sample_minutes(csms, clock.now()) == [(0, 1000)]
    assert await writer.flush() == 0


async def test_the_running_csms_writes_the_samples_of_its_charges(
    csms: Csms, station: RegisteredStation, clock: ManualClock
) -> None:
    start = clock.now()
    for minute, event_type in ((0, "Started"), (1, "Updated"), (2, "Ended")):
        at = start + timedelta(minutes=minute)
        payload = transaction_event(event_type, minute, at=at, wh=500 + 10 * minute)
        await csms.charging.transaction_event_201(
            station.station_id, payload, received=_received(payload, at)
        )

    # Its first reading and its last; the flush timer writes them.
    async def written() -> bool:
        return await _sample_minutes(csms, start) == [(0, 500), (2, 520)]

    await eventually(written, timeout=10)
