"""Domain errors, shared by every domain.

::

    CsmsError
     ├── NotFound            (HTTP 404)
     │    └── StationNotFound
     ├── Conflict            (HTTP 409)
     │    └── StationAlreadyExists
     └── InvalidInput        (HTTP 422)

The HTTP edge maps these to problem responses in one place (``csms.api.problems``);
the OCPP edge answers stations with OCPP results or CALLERRORs in its own table.
"""

from __future__ import annotations


class CsmsError(Exception):
    """Base of every error the domains raise on purpose."""

    title = "Request failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(CsmsError):
    title = "Not found"


class Conflict(CsmsError):
    title = "Conflict"


class InvalidInput(CsmsError):
    title = "Invalid input"


class StationNotFound(NotFound):
    title = "Station not found"

    def __init__(self, station_id: str) -> None:
        super().__init__(f"No station is registered with id {station_id!r}.")
        self.station_id = station_id


class StationAlreadyExists(Conflict):
    title = "Station already exists"

    def __init__(self, station_id: str) -> None:
        super().__init__(f"A station with id {station_id!r} is already registered.")
        self.station_id = station_id
