"""What an OCPP handler gets: the station it speaks for and the services it calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from csms.charging.journal import Received
from csms.clock import Clock
from csms.ocpp.framing import OcppVersion
from csms.stations.service import StationService
from csms.stations.state import StationState

if TYPE_CHECKING:
    from csms.charging.service import ChargingService


@dataclass(slots=True)
class StationLink:
    """The per-connection facts a handler may read and update."""

    station_id: str
    version: OcppVersion
    booted: bool
    state: StationState
    # The station's owner epoch when this link opened: what this link writes
    # is refused once a newer link (on any gateway) has taken the station.
    epoch: int | None = None


@dataclass(frozen=True, slots=True)
class Services:
    stations: StationService
    charging: ChargingService
    clock: Clock
    heartbeat_interval: int


@dataclass(slots=True)
class HandlerContext:
    link: StationLink
    services: Services
    log: structlog.typing.FilteringBoundLogger
    # The CALL's message id: kept with what a transaction message did.
    message_id: str = ""

    def received(self, payload: dict[str, Any]) -> Received:
        """The message being handled, as the journal keeps it."""
        return Received(
            message_id=self.message_id,
            version=self.link.version,
            payload=payload,
            received_at=self.services.clock.now(),
        )


Handler = Callable[[HandlerContext, dict[str, Any]], Awaitable[dict[str, Any]]]
Routes = Mapping[str, Handler]


class NotBooted(Exception):
    """A message other than BootNotification from a station never accepted."""


def format_time(moment: datetime) -> str:
    """OCPP date-time: UTC with millisecond precision and a ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
