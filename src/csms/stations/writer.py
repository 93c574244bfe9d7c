"""Group commits for station link and state changes.

A connect storm brings thousands of connects, boots and status notifications at
once. Committed one by one, each takes a pooled connection and a durable commit
(an fsync); they queue behind the pool and time out. Here they wait in one queue
instead, and whoever finds no commit running starts one that takes everything
queued — up to ``max_batch`` changes — into a single transaction:

- the stations of the batch are loaded and locked in one query, in id order, so
  that two writers (two gateway processes) never deadlock;
- each change is applied in arrival order to its station, and its outcome (the
  derived state after it) is computed in memory;
- one commit makes the whole batch durable, then every waiter gets its outcome.

Under light load a batch is one change and costs what a lone transaction did;
under a storm, a few hundred changes share one commit. Nothing is acknowledged
before its commit: a failed commit fails every change of the batch, and each
caller handles it as it handled its own failure before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from csms.clock import Clock
from csms.errors import StationNotFound
from csms.events import Event, station_changed
from csms.stations.models import Station
from csms.stations.state import ConnectorStatus, StationState, derive_station_state

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.stations")

# Large enough that a storm costs few commits, small enough that one batch's
# transaction stays short (well under a second on either database).
DEFAULT_MAX_BATCH = 500


class StaleOwner(Exception):
    """A change from a gateway whose link to the station was superseded."""

    def __init__(self, station_id: str, epoch: int, current: int) -> None:
        super().__init__(
            f"station {station_id}: epoch {epoch} is stale (current {current})"
        )
        self.station_id = station_id
        self.epoch = epoch
        self.current = current


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """What the gateway needs to know after a station's link changed."""

    state: StationState
    booted: bool
    # The owner epoch after the change: a new link's fencing token.
    epoch: int = 0


# Applies one change to a locked station (and may add rows to the session).
Apply = Callable[[AsyncSession, Station, datetime], None]


@dataclass(slots=True)
class _Change:
    station_id: str
    apply: Apply
    # Refuse the change unless the station's owner epoch is still this one.
    epoch: int | None
    future: asyncio.Future[LinkOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class StationWriter:
    """The one queue through which link and state changes reach the database."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        publish: Callable[[Event], None],
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._publish = publish
        self._max_batch = max_batch
        self._queue: list[_Change] = []
        self._committing: asyncio.Task[None] | None = None
        # How many changes went into how many commits: the batching at work.
        self.changes = 0
        self.commits = 0

    async def submit(
        self, station_id: str, apply: Apply, *, epoch: int | None = None
    ) -> LinkOutcome:
        """Apply ``apply`` to the station, durably; return the state after it."""
        change = _Change(station_id, apply, epoch)
        self._queue.append(change)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(
                self._drain(), name="station-group-commit"
            )
        # Shielded: a caller that gives up must not cancel the batch of others.
        return await asyncio.shield(change.future)

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            await self._commit(batch)

    async def _commit(self, batch: list[_Change]) -> None:
        try:
            outcomes, events = await self._apply_all(batch)
        except _RetryAlone as retry:
            # One change raised while being applied: nothing of the batch was
            # committed. It alone fails; the others are committed without it.
            _fail(retry.change, retry.error)
            rest = [change for change in batch if change is not retry.change]
            if rest:
                await self._commit(rest)
            return
        except Exception as exc:
            for change in batch:
                _fail(change, exc)
            return
        self.changes += len(batch)
        self.commits += 1
        for event in events:
            self._publish(event)
        for change, outcome in zip(batch, outcomes, strict=True):
            if change.future.done():
                continue
            if isinstance(outcome, BaseException):
                change.future.set_exception(outcome)
            else:
                change.future.set_result(outcome)

    async def _apply_all(
        self, batch: list[_Change]
    ) -> tuple[list[LinkOutcome | Exception], list[Event]]:
        station_ids = sorted({change.station_id for change in batch})
        outcomes: list[LinkOutcome | Exception] = []
        events: list[Event] = []
        async with self._sessionmaker() as session:
            stations = {
                station.id: station
                for station in await session.scalars(
                    select(Station)
                    .where(Station.id.in_(station_ids))
                    .options(selectinload(Station.connectors))
                    .order_by(Station.id)
                    .with_for_update()
                )
            }
            now = self._clock.now()
            for change in batch:
                station = stations.get(change.station_id)
                if station is None:
                    outcomes.append(StationNotFound(change.station_id))
                    continue
                if change.epoch is not None and change.epoch != station.owner_epoch:
                    outcomes.append(
                        StaleOwner(change.station_id, change.epoch, station.owner_epoch)
                    )
                    continue
                before = visible_state(station)
                try:
                    change.apply(session, station, now)
                except Exception as exc:
                    raise _RetryAlone(change, exc) from exc
                state = derive(station)
                station.state = state.value
                station.updated_at = now
                outcomes.append(
                    LinkOutcome(
                        state=state,
                        booted=station.boot_accepted_at is not None,
                        epoch=station.owner_epoch,
                    )
                )
                if visible_state(station) != before:
                    events.append(station_changed(station))
            await session.commit()
        return outcomes, events


class _RetryAlone(Exception):
    def __init__(self, change: _Change, error: Exception) -> None:
        super().__init__(str(error))
        self.change = change
        self.error = error


def _fail(change: _Change, error: BaseException) -> None:
    if not change.future.done():
        change.future.set_exception(error)


VisibleState = tuple[str, bool, tuple[tuple[int, int, str], ...]]


def visible_state(station: Station) -> VisibleState:
    """What a dashboard shows of a station: its state, link and connectors."""
    return (
        station.state,
        station.online,
        tuple(
            sorted((c.evse_id, c.connector_id, c.status) for c in station.connectors)
        ),
    )


def derive(station: Station) -> StationState:
    return derive_station_state(
        online=station.online,
        booted=station.boot_accepted_at is not None,
        connectors=[
            ConnectorStatus(c.evse_id, c.connector_id, c.status)
            for c in station.connectors
        ],
    )
