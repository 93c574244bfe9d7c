"""Domain errors, shared by every domain.

::

    CsmsError
     ├── NotFound            (HTTP 404)
     │    ├── StationNotFound
     │    ├── CustomerNotFound
     │    ├── CarNotFound
     │    └── IdTokenNotFound
     ├── Conflict            (HTTP 409)
     │    ├── StationAlreadyExists
     │    ├── EmailAlreadyRegistered
     │    ├── PlateAlreadyRegistered
     │    └── NoUsableIdToken
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


class CustomerNotFound(NotFound):
    title = "Customer not found"

    def __init__(self, customer_id: int) -> None:
        super().__init__(f"No customer has id {customer_id}.")
        self.customer_id = customer_id


class CarNotFound(NotFound):
    """No such car, or not the caller's: both get this same answer."""

    title = "Car not found"

    def __init__(self, car_id: int) -> None:
        super().__init__(f"You have no car with id {car_id}.")
        self.car_id = car_id


class IdTokenNotFound(NotFound):
    title = "Id token not found"

    def __init__(self, value: str) -> None:
        super().__init__(f"No id token has the value {value!r}.")
        self.value = value


class EmailAlreadyRegistered(Conflict):
    title = "Email already registered"

    def __init__(self, email: str) -> None:
        super().__init__(f"An account with email {email!r} already exists.")
        self.email = email


class PlateAlreadyRegistered(Conflict):
    title = "Plate already registered"

    def __init__(self, plate: str) -> None:
        super().__init__(f"You already have a car with plate {plate!r}.")
        self.plate = plate


class NoUsableIdToken(Conflict):
    """The customer has no id token a station would accept (all blocked or expired)."""

    title = "No usable id token"

    def __init__(self, customer_id: int) -> None:
        super().__init__(
            f"Customer {customer_id} has no id token that is neither blocked nor "
            "expired."
        )
        self.customer_id = customer_id
