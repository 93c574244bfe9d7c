"""Meter samples for charts: downsampled, held in memory, written in batches.

Every meter value a station sends is already in the journal, committed before
the station was answered. The samples are a thinner copy for charts and
analysis — at 50,000 charges with a reading a minute, one row per reading
would be 72 million rows a day — so they are:

- **downsampled**: at most one sample per charge per ``interval`` (default 5
  minutes), plus the last reading of the charge;
- **written after the acknowledgement**: ``add`` only puts them in a bounded
  buffer; the owner calls ``flush`` on a timer and at shutdown, which writes
  them in multi-row INSERTs. A crash loses the samples not yet flushed, never
  a reading: the journal holds them all.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.charging.journal import is_plausible_time, storable_meter
from csms.charging.meter import latest_energy, parse_timestamp
from csms.charging.models import MeterSample
from csms.db.health import is_transient

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.charging")

DEFAULT_INTERVAL = timedelta(minutes=5)
# Samples waiting for a flush: minutes of a world-scale load (50,000 charges, a
# sample each per 5 minutes), reached only when the database stays away.
DEFAULT_PENDING_LIMIT = 200_000
# Charges whose last sample time is remembered; the oldest is forgotten first.
DEFAULT_TRACKED_LIMIT = 200_000

POWER = "Power.Active.Import"
STATE_OF_CHARGE = "SoC"
# What the columns hold; a value beyond is in the journal only.
MAX_POWER_W = 2**31 - 1
MAX_SOC_PERCENT = 100


@dataclass(frozen=True, slots=True)
class Sample:
    record_id: str
    sampled_at: datetime
    meter_wh: int | None
    power_w: int | None
    soc_percent: int | None


class MeterSampleSink(Protocol):
    """Where the charging service hands the readings of each applied message."""

    def add(self, samples: Sequence[Sample], *, final: bool = False) -> None: ...


def read_samples(
    record_id: str, meter_values: Iterable[Mapping[str, Any]], *, received_at: datetime
) -> list[Sample]:
    """One sample per meter value (1.6 MeterValue, 2.0.1 MeterValueType) that
    carries energy, power or state of charge, oldest first.

    A timestamp that cannot be right counts as the time of receipt, as it does
    for the record.
    """
    samples: list[Sample] = []
    for meter_value in meter_values:
        try:
            sampled_at = parse_timestamp(meter_value["timestamp"])
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if sampled_at.tzinfo is None or not is_plausible_time(
            sampled_at, received_at=received_at
        ):
            sampled_at = received_at
        sampled_values = meter_value.get("sampledValue") or []
        if not isinstance(sampled_values, list):
            continue
        energy = latest_energy([meter_value])
        sample = Sample(
            record_id=record_id,
            sampled_at=sampled_at,
            meter_wh=None if energy is None else storable_meter(energy.wh),
            power_w=_total_of(
                sampled_values,
                POWER,
                units={"W": 1, "kW": 1000},
                bounds=(-MAX_POWER_W, MAX_POWER_W),
            ),
            soc_percent=_total_of(
                sampled_values,
                STATE_OF_CHARGE,
                units={"Percent": 1},
                bounds=(0, MAX_SOC_PERCENT),
            ),
        )
        if (sample.meter_wh, sample.power_w, sample.soc_percent) != (None,) * 3:
            samples.append(sample)
    samples.sort(key=lambda sample: sample.sampled_at)
    return samples


class MeterSampleWriter:
    """Downsamples the samples it is given and writes them when flushed.

    At most ``pending_limit`` samples wait for a flush: beyond, the oldest is
    dropped and counted in ``dropped``.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: timedelta = DEFAULT_INTERVAL,
        pending_limit: int = DEFAULT_PENDING_LIMIT,
        tracked_limit: int = DEFAULT_TRACKED_LIMIT,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._interval = interval
        self._pending_limit = pending_limit
        self._tracked_limit = tracked_limit
        self._pending: deque[Sample] = deque()
        # Per charge, the time of its last sample kept; least recent first.
        self._last_kept: OrderedDict[str, datetime] = OrderedDict()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending(self) -> tuple[Sample, ...]:
        """The samples waiting for the next flush, oldest first."""
        return tuple(self._pending)

    def add(self, samples: Sequence[Sample], *, final: bool = False) -> None:
        """Keep those of ``samples`` an interval after the charge's last kept one.

        ``final``: the charge ended with these; its last sample is kept
        whatever the interval, and the charge is forgotten.
        """
        for index, sample in enumerate(samples):
            last = self._last_kept.get(sample.record_id)
            is_last_of_charge = final and index == len(samples) - 1
            if last is not None:
                # A reading older than the last kept one is in the journal only.
                if sample.sampled_at <= last:
                    continue
                if sample.sampled_at < last + self._interval and not is_last_of_charge:
                    continue
            self._keep(sample)
        if final and samples:
            self._last_kept.pop(samples[0].record_id, None)

    async def flush(self) -> int:
        """Write what waits, in multi-row INSERTs; how many samples were written.

        When the database fails for a while the batch is put back (within the
        limit) and the failure logged: the next flush tries again. Any other
        failure is a bug of ours: the batch is dropped, so that it cannot fail
        every flush after it.
        """
        batch = list(self._pending)
        self._pending.clear()
        if not batch:
            return 0
        try:
            async with self._sessionmaker() as session:
                # One statement, many parameter sets: SQLAlchemy sends them as
                # multi-row INSERTs of a cached statement (insertmanyvalues).
                await session.execute(
                    _insert_ignoring_repeats(session), [_row(s) for s in batch]
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            if not is_transient(exc):
                self.dropped += len(batch)
                logger.exception("charging.samples.batch_dropped", samples=len(batch))
                return 0
            self._restore(batch)
            logger.warning(
                "charging.samples.flush_failed",
                samples=len(batch),
                error=type(exc).__name__,
            )
            return 0
        logger.debug("charging.samples.flushed", samples=len(batch))
        return len(batch)

    def _keep(self, sample: Sample) -> None:
        self._last_kept[sample.record_id] = sample.sampled_at
        self._last_kept.move_to_end(sample.record_id)
        while len(self._last_kept) > self._tracked_limit:
            self._last_kept.popitem(last=False)
        self._pending.append(sample)
        while len(self._pending) > self._pending_limit:
            self._pending.popleft()
            self.dropped += 1

    def _restore(self, batch: list[Sample]) -> None:
        # Older than what arrived meanwhile: first in line, first dropped.
        self._pending.extendleft(reversed(batch))
        while len(self._pending) > self._pending_limit:
            self._pending.popleft()
            self.dropped += 1


def _insert_ignoring_repeats(session: AsyncSession) -> Any:
    # A sample already stored (a reading sent again after a restart of ours)
    # is the same sample: the primary key (record, time) keeps one.
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(MeterSample).on_conflict_do_nothing()
    return sqlite.insert(MeterSample).on_conflict_do_nothing()


def _row(sample: Sample) -> dict[str, Any]:
    return {
        "record_id": sample.record_id,
        "sampled_at": sample.sampled_at,
        "meter_wh": sample.meter_wh,
        "power_w": sample.power_w,
        "soc_percent": sample.soc_percent,
    }


def _total_of(
    sampled_values: Iterable[Any],
    measurand: str,
    *,
    units: Mapping[str, int],
    bounds: tuple[int, int],
) -> int | None:
    """The last value of ``measurand`` without a phase, in the first unit."""
    total: int | None = None
    for sample in sampled_values:
        if not isinstance(sample, Mapping) or sample.get("measurand") != measurand:
            continue
        if sample.get("phase") not in (None, "N"):
            continue
        try:
            value = float(sample["value"])
            unit_of_measure = sample.get("unitOfMeasure")
            if isinstance(unit_of_measure, Mapping):
                unit = unit_of_measure.get("unit", next(iter(units)))
                value *= 10.0 ** int(unit_of_measure.get("multiplier", 0))
            else:
                unit = sample.get("unit", next(iter(units)))
            value *= units[unit]
        except (KeyError, TypeError, ValueError, OverflowError):
            continue
        if math.isfinite(value) and bounds[0] <= value <= bounds[1]:
            total = round(value)
    return total
