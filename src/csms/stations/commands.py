"""What an operator may ask a connected station to do: reset, unlock a
connector, change availability.

Each command is one OCPP call through the gateway that holds the station's
socket (the same path as remote start and stop), shaped for the station's
version:

- reset: 1.6 Reset ``{type: Soft|Hard}``; 2.0.1 Reset ``{type: OnIdle|Immediate}``
  (B11, B12);
- unlock a connector: 1.6 UnlockConnector ``{connectorId}``; 2.0.1
  UnlockConnector ``{evseId, connectorId}`` (F05);
- availability: 1.6 ChangeAvailability ``{connectorId (0: the whole station),
  type}``; 2.0.1 ChangeAvailability ``{operationalStatus, evse?}`` (G03).

What the station answers (Accepted, Rejected, Scheduled, Unlocked …) is an
ordinary outcome, returned as it came. A station that is offline, does not
answer, or answers with a CALLERROR raises a :class:`~csms.errors.Conflict`.
Every command sent is stored in the station's event log with its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

import structlog

from csms.errors import Conflict
from csms.ocpp.calls import CallFailed, CallTimeout
from csms.ocpp.framing import OcppVersion
from csms.ocpp.validation import SchemaViolation
from csms.stations.service import StationService

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.stations")


class StationCaller(Protocol):
    """The gateway (or the bus to it), as far as commands need it."""

    def version_of(self, station_id: str) -> OcppVersion | None: ...

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...


class ResetKind(StrEnum):
    """Soft: when idle, ending charges properly; hard: at once."""

    SOFT = "soft"
    HARD = "hard"


class Availability(StrEnum):
    OPERATIVE = "operative"
    INOPERATIVE = "inoperative"


class StationDidNotAnswer(Conflict):
    title = "Station did not answer"

    def __init__(self, station_id: str, action: str) -> None:
        super().__init__(f"Station {station_id} did not answer {action} in time.")


class StationCommandFailed(Conflict):
    title = "Station could not do it"

    def __init__(self, station_id: str, action: str, reason: str) -> None:
        super().__init__(f"Station {station_id} could not process {action}: {reason}")


class StationOffline(Conflict):
    title = "Station not connected"

    def __init__(self, station_id: str) -> None:
        super().__init__(f"Station {station_id} is not connected right now.")


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    action: str
    status: str


class StationControl:
    def __init__(
        self,
        stations: StationService,
        commands: StationCaller,
        *,
        call_timeout: timedelta,
    ) -> None:
        self._stations = stations
        self._commands = commands
        self._call_timeout = call_timeout.total_seconds()

    async def reset(
        self, station_id: str, *, kind: ResetKind, by: str
    ) -> CommandOutcome:
        version = await self._version(station_id)
        if version is OcppVersion.V16:
            payload = {"type": "Soft" if kind is ResetKind.SOFT else "Hard"}
        else:
            # 2.0.1 B11/B12: OnIdle waits for transactions to end, like a soft reset.
            payload = {"type": "OnIdle" if kind is ResetKind.SOFT else "Immediate"}
        return await self._send(station_id, "Reset", payload, by=by)

    async def unlock_connector(
        self, station_id: str, *, evse_id: int, connector_id: int, by: str
    ) -> CommandOutcome:
        version = await self._version(station_id)
        if version is OcppVersion.V16:
            # 1.6 knows connectors only; we store them with evse_id = connector_id.
            payload: dict[str, Any] = {"connectorId": connector_id}
        else:
            payload = {"evseId": evse_id, "connectorId": connector_id}
        return await self._send(station_id, "UnlockConnector", payload, by=by)

    async def change_availability(
        self,
        station_id: str,
        *,
        availability: Availability,
        evse_id: int | None = None,
        connector_id: int | None = None,
        by: str,
    ) -> CommandOutcome:
        """The whole station when ``evse_id`` is None, else one EVSE (connector)."""
        version = await self._version(station_id)
        status = availability.value.capitalize()
        if version is OcppVersion.V16:
            # 1.6 section 5.2: connector 0 means the whole station.
            target = 0 if evse_id is None else (connector_id or evse_id)
            payload: dict[str, Any] = {"connectorId": target, "type": status}
        else:
            payload = {"operationalStatus": status}
            if evse_id is not None:
                payload["evse"] = {"id": evse_id}
                if connector_id is not None:
                    payload["evse"]["connectorId"] = connector_id
        return await self._send(station_id, "ChangeAvailability", payload, by=by)

    async def _version(self, station_id: str) -> OcppVersion:
        # An unknown station is a 404 before it is an offline one.
        await self._stations.get(station_id)
        version = self._commands.version_of(station_id)
        if version is None:
            raise StationOffline(station_id)
        return version

    async def _send(
        self, station_id: str, action: str, payload: dict[str, Any], *, by: str
    ) -> CommandOutcome:
        log = logger.bind(station_id=station_id, action=action, operator=by)
        try:
            answer = await self._commands.call(
                station_id, action, payload, timeout=self._call_timeout
            )
        except CallTimeout as exc:
            log.warning("stations.command.timed_out")
            raise StationDidNotAnswer(station_id, action) from exc
        except CallFailed as exc:
            log.warning("stations.command.failed", code=exc.code)
            raise StationCommandFailed(station_id, action, exc.code) from exc
        except SchemaViolation as exc:
            log.warning("stations.command.invalid_answer", reason=exc.description)
            raise StationCommandFailed(
                station_id, action, "its answer was malformed"
            ) from exc
        except Conflict as exc:
            # StationNotConnected: the link closed while the call waited.
            raise StationOffline(station_id) from exc
        status = str(answer.get("status", "Unknown"))
        log.info("stations.command.answered", status=status)
        await self._stations.record_event(
            station_id,
            "operator_command",
            details={"action": action, "request": payload, "status": status, "by": by},
        )
        return CommandOutcome(action=action, status=status)
