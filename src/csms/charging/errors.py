"""What can go wrong when a customer starts or stops a charge."""

from __future__ import annotations

from csms.errors import Conflict, InvalidInput, NotFound


class StationUnavailable(Conflict):
    title = "Station unavailable"

    def __init__(self, station_id: str) -> None:
        super().__init__(
            f"Station {station_id} is offline or out of order; choose another one."
        )


class ConnectorBusy(Conflict):
    title = "Connector busy"

    def __init__(self, station_id: str) -> None:
        super().__init__(
            f"The connector you chose at station {station_id} is in use or not ready."
        )


class ConnectorNotFound(InvalidInput):
    title = "No such connector"

    def __init__(self, station_id: str) -> None:
        super().__init__(f"Station {station_id} has no such connector.")


class ChargingSessionNotFound(NotFound):
    title = "Charging session not found"

    def __init__(self, record_id: str) -> None:
        super().__init__(f"No charging session {record_id} of yours exists.")


class SessionNotStoppable(Conflict):
    title = "Charge cannot be stopped"


class IdempotencyKeyReused(Conflict):
    title = "Idempotency key reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used for a different request."
        )
