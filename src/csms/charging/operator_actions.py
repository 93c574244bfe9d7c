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
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.charging.errors import SessionNotStoppable, StationUnavailable
from csms.charging.models import ChargeDetailRecord
from csms.charging.service import StationCommands
from csms.charging.state import CdrState
from csms.errors import NotFound
from csms.ocpp.calls import CallFailed, CallTimeout, StationNotConnected
from csms.ocpp.framing import OcppVersion

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
        if record.state != CdrState.STARTED.value or record.transaction_id is None:
            raise SessionNotStoppable(
                f"Only a charge that has started can be stopped; this one is "
                f"{record.state}."
            )
        version = self._commands.version_of(record.station_id)
        if version is None:
            raise StationUnavailable(record.station_id)
        if version is OcppVersion.V16:
            action = "RemoteStopTransaction"
            payload: dict[str, Any] = {"transactionId": int(record.transaction_id)}
        else:
            action = "RequestStopTransaction"
            payload = {"transactionId": record.transaction_id}
        try:
            answer = await self._commands.call(
                record.station_id, action, payload, timeout=self._call_timeout
            )
        except StationNotConnected as exc:
            raise StationUnavailable(record.station_id) from exc
        except (CallTimeout, CallFailed) as exc:
            raise SessionNotStoppable(
                "The station did not accept the stop request; try again."
            ) from exc
        if answer.get("status") != "Accepted":
            raise SessionNotStoppable("The station refused to stop the charge.")
        logger.info(
            "charging.session.stop_requested",
            record_id=record.id,
            station_id=record.station_id,
            by=by,
        )
        return await self.get_record(record.id)
