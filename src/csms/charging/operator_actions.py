"""What an operator may do to a charge: stop it remotely, whoever started it.

Kept beside :mod:`csms.charging.service` rather than in it: the customer's stop
(``ChargingService.stop_session``) checks ownership, this one does not — the
route in front of it requires an operator. Both send the same
RemoteStopTransaction (1.6) / RequestStopTransaction (2.0.1) through the same
station commands, and both leave the record Started: it turns Finished when the
station's StopTransaction / TransactionEvent(Ended) arrives.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.charging.models import ChargeDetailRecord
from csms.charging.service import StationCommands, request_stop
from csms.errors import NotFound

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.charging")


class ChargeRecordNotFound(NotFound):
    title = "Charge Detail Record not found"

    def __init__(self, record_id: str) -> None:
        super().__init__(f"No Charge Detail Record has id {record_id!r}.")


class OperatorCharging:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        commands: StationCommands,
        call_timeout: timedelta,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._commands = commands
        self._call_timeout = call_timeout.total_seconds()

    async def get_record(self, record_id: str) -> ChargeDetailRecord:
        async with self._sessionmaker() as session:
            record = await session.get(ChargeDetailRecord, record_id)
        if record is None:
            raise ChargeRecordNotFound(record_id)
        return record

    async def stop_by_operator(
        self, record_id: str, *, by: str = "operator"
    ) -> ChargeDetailRecord:
        """Ask the station to stop this charge; returns the record as it is now."""
        record = await self.get_record(record_id)
        await request_stop(self._commands, record, timeout=self._call_timeout)
        logger.info(
            "charging.session.stop_requested",
            record_id=record.id,
            station_id=record.station_id,
            by=by,
        )
        return await self.get_record(record.id)
