"""What the HTTP API says about customers, their id tokens and their cars."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    model_validator,
)

from csms.customers.models import Car, Customer, IdToken
from csms.customers.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from csms.customers.service import (
    BATTERY_CAPACITY_MAX_KWH,
    CAR_TEXT_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PLATE_MAX_LENGTH,
    ConnectorType,
    normalize_plate,
)


def _normalize_plate_input(value: Any) -> Any:
    # Before the length check, so "AB   123" counts as the 6 characters stored.
    return normalize_plate(value) if isinstance(value, str) else value


CarText = Annotated[str, Field(min_length=1, max_length=CAR_TEXT_MAX_LENGTH)]
Plate = Annotated[
    str,
    BeforeValidator(_normalize_plate_input),
    Field(
        min_length=1,
        max_length=PLATE_MAX_LENGTH,
        description="Stored upper-case, with runs of spaces collapsed to one.",
    ),
]
BatteryCapacity = Annotated[float, Field(gt=0, le=BATTERY_CAPACITY_MAX_KWH)]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(description="Stored in lower case.")
    password: str = Field(
        min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH
    )
    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)


class CustomerOut(BaseModel):
    id: int
    email: str
    name: str
    created_at: datetime

    @classmethod
    def from_customer(cls, customer: Customer) -> CustomerOut:
        return cls(
            id=customer.id,
            email=customer.email,
            name=customer.name,
            created_at=customer.created_at,
        )


class AccessTokenOut(BaseModel):
    access_token: str
    token_type: str = Field(description='Always "bearer".')
    expires_in: int = Field(description="Seconds until the token expires.")


class IdTokenOut(BaseModel):
    value: str = Field(description="What a station sends as idTag / idToken.")
    blocked: bool
    expires_at: datetime | None
    created_at: datetime

    @classmethod
    def from_id_token(cls, token: IdToken) -> IdTokenOut:
        return cls(
            value=token.value,
            blocked=token.blocked,
            expires_at=token.expires_at,
            created_at=token.created_at,
        )


class OperatorIdTokenOut(IdTokenOut):
    customer_id: int

    @classmethod
    def from_id_token(cls, token: IdToken) -> OperatorIdTokenOut:
        return cls(
            value=token.value,
            blocked=token.blocked,
            expires_at=token.expires_at,
            created_at=token.created_at,
            customer_id=token.customer_id,
        )


class CarCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    make: CarText
    model: CarText
    plate: Plate
    battery_capacity_kwh: BatteryCapacity | None = None
    connector_type: ConnectorType | None = None


class CarUpdate(BaseModel):
    """The fields to change; leave one out to keep it, null clears an optional one."""

    model_config = ConfigDict(extra="forbid")

    make: CarText | None = None
    model: CarText | None = None
    plate: Plate | None = None
    battery_capacity_kwh: BatteryCapacity | None = None
    connector_type: ConnectorType | None = None

    @model_validator(mode="after")
    def _refuse_null_for_required_fields(self) -> Self:
        for name in ("make", "model", "plate"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep it")
        return self


class CarOut(BaseModel):
    id: int
    make: str
    model: str
    plate: str
    battery_capacity_kwh: float | None
    connector_type: ConnectorType | None
    created_at: datetime

    @classmethod
    def from_car(cls, car: Car) -> CarOut:
        return cls(
            id=car.id,
            make=car.make,
            model=car.model,
            plate=car.plate,
            battery_capacity_kwh=car.battery_capacity_kwh,
            connector_type=(
                ConnectorType(car.connector_type) if car.connector_type else None
            ),
            created_at=car.created_at,
        )
