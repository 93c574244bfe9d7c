"""A station's own state, derived from its connectors and its link.

Pure rules, no I/O: the gateway and the watchdog feed facts in, and store what
comes out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class StationState(StrEnum):
    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"
    CHARGING = "Charging"


# OCPP 1.6 (section 4.9) reports nine connector statuses; three of them mean a
# transaction is in progress. OCPP 2.0.1 reports five; "Occupied" is the only
# one that can mean charging, so it counts as charging until transactions
# tell us more.
CHARGING_STATUSES = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE", "Occupied"})
OUT_OF_ORDER_STATUSES = frozenset({"Unavailable", "Faulted"})


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    evse_id: int
    connector_id: int
    status: str


def derive_station_state(
    *, online: bool, booted: bool, connectors: Iterable[ConnectorStatus]
) -> StationState:
    """Apply the station state rules.

    - Charging while any connector charges — also when the link is down, since
      an open charge must be reconciled rather than forgotten;
    - Unavailable when offline, never booted, or every connector out of order
      (a 1.6 station reporting connector 0 out of order is out of order whole);
    - Available otherwise.
    """
    statuses = list(connectors)
    if any(c.status in CHARGING_STATUSES for c in statuses if c.connector_id != 0):
        return StationState.CHARGING
    if not online or not booted:
        return StationState.UNAVAILABLE

    whole_station = [c for c in statuses if c.evse_id == 0 and c.connector_id == 0]
    if any(c.status in OUT_OF_ORDER_STATUSES for c in whole_station):
        return StationState.UNAVAILABLE
    outlets = [c for c in statuses if c.connector_id != 0]
    if outlets and all(c.status in OUT_OF_ORDER_STATUSES for c in outlets):
        return StationState.UNAVAILABLE
    return StationState.AVAILABLE
