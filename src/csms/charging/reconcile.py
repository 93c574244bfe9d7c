"""Reconciling the charges the CSMS holds open with what the stations know.

A charge whose station lost its link stays open (``Started``): the station
keeps charging and queues its transaction messages, which close the record when
they arrive. Two things make sure a record does not stay open for ever:

- **Resync on reconnect** (``on_station_connected``, run by the gateway as a
  tracked task for every new connection). Once the connection has settled the
  CSMS asks for the connectors' statuses (TriggerMessage StatusNotification)
  and then looks at each charge it still holds open for the station. 2.0.1: it
  asks GetTransactionStatus; a transaction the station no longer runs and has
  nothing queued for is closed. 1.6 has no such question: after a grace for the
  queued messages to arrive, a charge whose connector reports itself free and
  whose StopTransaction never came is closed. Either way the record is flagged
  ``closed_by_resync``. Anything that goes wrong is logged; the next reconnect
  tries again.
- **Abandoned charges** (``close_abandoned_charges``, a worker timer). A station
  offline for longer than ``CSMS_OFFLINE_CHARGE_GRACE`` has its open charges
  closed with reason ``StationOffline`` and the flags ``closed_without_stop`` and
  ``incomplete``: billed on the last meter reading that arrived.

Closing is one conditional update: a record a station's own message finished in
the meantime is left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.charging.models import ChargeDetailRecord
from csms.charging.service import (
    ChargingService,
    StationCommands,
    release_connectors,
)
from csms.charging.state import CdrState
from csms.clock import Clock
from csms.ocpp.calls import CallFailed, CallTimeout, StationNotConnected
from csms.ocpp.framing import OcppVersion
from csms.stations.models import Connector, Station

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.charging")

RESYNC_FLAG = "closed_by_resync"
ABANDONED_FLAGS = ("closed_without_stop", "incomplete")
ABANDONED_REASON = "StationOffline"
RESYNC_REASON = "StationReported"
# 1.6 connector statuses that mean no transaction runs there (1.6 section 4.9).
FREE_STATUSES_16 = frozenset({"Available", "Preparing", "Finishing"})


@dataclass(frozen=True, slots=True)
class ResyncOutcome:
    open_charges: int
    closed: int


class Reconciler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        charging: ChargingService,
        commands: StationCommands,
        resync_delay: timedelta,
        resync_grace: timedelta,
        offline_grace: timedelta,
        call_timeout: timedelta,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._charging = charging
        self._commands = commands
        self._resync_delay = resync_delay.total_seconds()
        self._resync_grace = resync_grace.total_seconds()
        self._offline_grace = offline_grace
        self._call_timeout = call_timeout.total_seconds()

    # -- a station came back --------------------------------------------------------

    async def on_station_connected(self, station_id: str, version: OcppVersion) -> None:
        """The gateway's hook for a new connection: resync once it has settled.

        Never raises: a failed resync is logged and tried again on the next
        connection of the station.
        """
        log = logger.bind(station_id=station_id, ocpp_version=version.value)

        # A station delivers its queue first thing after reconnecting; give it
        # that moment before asking about transactions the queue may settle.
        await asyncio.sleep(self._resync_delay)
        if self._commands.version_of(station_id) is not version:
            return
        try:
            outcome = await self.resync(station_id, version)
        except (StationNotConnected, CallTimeout, CallFailed) as exc:
            log.warning("charging.resync.interrupted", reason=str(exc))
        except (SQLAlchemyError, OSError) as exc:
            log.warning("charging.resync.database_failed", error=repr(exc))
        except Exception:
            log.exception("charging.resync.failed")
        else:
            if outcome.open_charges:
                log.info(
                    "charging.resync.done",
                    open_charges=outcome.open_charges,
                    closed=outcome.closed,
                )

    async def resync(self, station_id: str, version: OcppVersion) -> ResyncOutcome:
        """Bring the station's open charges in line with what it reports."""
        log = logger.bind(station_id=station_id, ocpp_version=version.value)
        # TODO: a station that booted on this very connection is asked for its
        # statuses too (a TriggerMessage and a query per connect): wasted work
        # in a connect storm of fresh stations.
        if not await self._is_booted(station_id):
            # B02.FR.02 (2.0.1): nothing but TriggerMessage(BootNotification)
            # before a boot is accepted; a first-time station has nothing open.
            return ResyncOutcome(open_charges=0, closed=0)
        asked_at = self._clock.now()

        # Statuses first: the 1.6 rule below relies on fresh ones.
        try:
            answer = await self._commands.call(
                station_id,
                "TriggerMessage",
                {"requestedMessage": "StatusNotification"},
                timeout=self._call_timeout,
            )
        except (CallFailed, CallTimeout) as exc:
            log.warning("charging.resync.trigger_failed", reason=str(exc))
        else:
            if answer.get("status") != "Accepted":
                log.warning(
                    "charging.resync.trigger_refused", status=answer.get("status")
                )

        records = await self._open_records(station_id)
        if not records:
            return ResyncOutcome(open_charges=0, closed=0)
        if version is OcppVersion.V201:
            closed = await self._resync_201(station_id, records)
        else:
            closed = await self._resync_16(station_id, asked_at=asked_at)
        return ResyncOutcome(open_charges=len(records), closed=closed)

    async def _resync_201(
        self, station_id: str, records: Sequence[ChargeDetailRecord]
    ) -> int:
        closed = 0
        for record in records:
            if record.transaction_id is None:
                continue
            # E14 / D14: ask the station whether the transaction still runs.
            answer = await self._commands.call(
                station_id,
                "GetTransactionStatus",
                {"transactionId": record.transaction_id},
                timeout=self._call_timeout,
            )
            ongoing = answer.get("ongoingIndicator")
            if ongoing is not False or answer.get("messagesInQueue", False):
                # Still charging, or its Ended event is on its way.
                continue
            if await self._close(
                record.id,
                reason=record.stop_reason or RESYNC_REASON,
                flags=(RESYNC_FLAG,),
            ):
                closed += 1
            # The station said nothing more is queued: the record is complete.
            await self._charging.mark_complete(
                station_id, record.transaction_id, "StationReported"
            )
        return closed

    async def _resync_16(self, station_id: str, *, asked_at: datetime) -> int:
        # 1.6 cannot be asked about a transaction: wait for the queued messages
        # (a StopTransaction among them closes the record by itself).
        await asyncio.sleep(self._resync_grace)
        if self._commands.version_of(station_id) is not OcppVersion.V16:
            return 0
        closed = 0
        async with self._sessionmaker() as session:
            rows = (
                await session.execute(
                    select(ChargeDetailRecord.id, ChargeDetailRecord.stop_reason)
                    .join(
                        Connector,
                        (Connector.station_id == ChargeDetailRecord.station_id)
                        & (Connector.evse_id == ChargeDetailRecord.evse_id)
                        & (Connector.connector_id == ChargeDetailRecord.connector_id),
                    )
                    .where(
                        ChargeDetailRecord.station_id == station_id,
                        ChargeDetailRecord.state == CdrState.STARTED.value,
                        Connector.status.in_(FREE_STATUSES_16),
                        # Only a status reported on this connection counts.
                        Connector.updated_at >= asked_at,
                        # A record still receiving queued data will get its
                        # stop from the same queue.
                        ChargeDetailRecord.updated_at <= asked_at,
                    )
                )
            ).all()
        for record_id, stop_reason in rows:
            if await self._close(
                record_id, reason=stop_reason or RESYNC_REASON, flags=(RESYNC_FLAG,)
            ):
                closed += 1
        return closed

    # -- a station stayed away ------------------------------------------------------

    async def close_abandoned_charges(self) -> int:
        """Close the open charges of stations offline past the grace; how many."""
        deadline = self._clock.now() - self._offline_grace
        async with self._sessionmaker() as session:
            rows = (
                await session.execute(
                    select(
                        ChargeDetailRecord.id,
                        ChargeDetailRecord.last_meter_at,
                        Station.last_seen_at,
                    )
                    .join(Station, Station.id == ChargeDetailRecord.station_id)
                    .where(
                        ChargeDetailRecord.state == CdrState.STARTED.value,
                        Station.online.is_(False),
                        or_(
                            Station.last_seen_at < deadline,
                            Station.last_seen_at.is_(None)
                            & (ChargeDetailRecord.updated_at < deadline),
                        ),
                    )
                )
            ).all()
        closed = 0
        for record_id, last_meter_at, last_seen_at in rows:
            record = await self._charging.close_offline_charge(
                record_id,
                reason=ABANDONED_REASON,
                stopped_at=last_meter_at or last_seen_at or self._clock.now(),
            )
            if set(ABANDONED_FLAGS) <= set(record.flags):
                closed += 1
        return closed

    # -- helpers ----------------------------------------------------------------------

    async def _is_booted(self, station_id: str) -> bool:
        async with self._sessionmaker() as session:
            booted_at = await session.scalar(
                select(Station.boot_accepted_at).where(Station.id == station_id)
            )
        return booted_at is not None

    async def _open_records(self, station_id: str) -> Sequence[ChargeDetailRecord]:
        async with self._sessionmaker() as session:
            return (
                await session.scalars(
                    select(ChargeDetailRecord)
                    .where(
                        ChargeDetailRecord.station_id == station_id,
                        ChargeDetailRecord.state == CdrState.STARTED.value,
                    )
                    .order_by(ChargeDetailRecord.id)
                )
            ).all()

    async def _close(
        self,
        record_id: str,
        *,
        reason: str,
        flags: Sequence[str],
        fallback_stop: datetime | None = None,
    ) -> bool:
        """Finish a Started record on its last reading; False if it is not open."""
        # TODO: move this into ChargingService beside close_offline_charge (which
        # flags closed_without_stop/incomplete, wrong for a station that reported
        # the charge over), so that one place owns how a record is closed.
        async with self._sessionmaker() as session:
            record = await session.scalar(
                select(ChargeDetailRecord)
                .where(
                    ChargeDetailRecord.id == record_id,
                    ChargeDetailRecord.state == CdrState.STARTED.value,
                )
                .with_for_update()
            )
            if record is None:
                return False
            now = self._clock.now()
            record.state = CdrState.FINISHED.value
            record.stop_reason = reason
            record.stopped_at = record.last_meter_at or fallback_stop or now
            record.meter_stop_wh = record.meter_last_wh
            if record.meter_last_wh is not None and record.meter_start_wh is not None:
                record.energy_wh = max(0, record.meter_last_wh - record.meter_start_wh)
            record.flags = [*record.flags, *(f for f in flags if f not in record.flags)]
            record.updated_at = now
            await release_connectors(session, record.id)
            await session.commit()
            station_id = record.station_id
        logger.info(
            "charging.session.closed_without_stop",
            record_id=record_id,
            station_id=station_id,
            reason=reason,
            flags=list(flags),
        )
        return True
