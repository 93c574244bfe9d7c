"""What the HTTP API says about stations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from csms.stations.commands import Availability, ResetKind
from csms.stations.credentials import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from csms.stations.models import (
    HIGHEST_SECURITY_PROFILE,
    LOWEST_SECURITY_PROFILE,
    STATION_ID_MAX_LENGTH,
    Station,
    StationEvent,
)
from csms.stations.state import StationState


class Location(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class StationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        min_length=1,
        max_length=STATION_ID_MAX_LENGTH,
        pattern=r"^[A-Za-z0-9\-_.*+@]+$",
        description="The station's OCPP identity: the last segment of its URL.",
    )
    name: str | None = Field(default=None, max_length=200)
    location: Location | None = None
    password: str | None = Field(
        default=None,
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        description="Leave out to have one generated (and shown once).",
    )
    security_profile: int = Field(
        default=LOWEST_SECURITY_PROFILE,
        ge=LOWEST_SECURITY_PROFILE,
        le=HIGHEST_SECURITY_PROFILE,
        description=(
            "The lowest OCPP security profile the station may connect with: "
            "1 Basic auth, 2 TLS and Basic auth, 3 TLS with a client certificate."
        ),
    )


class StationBulkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stations: list[StationCreate] = Field(min_length=1, max_length=10_000)


class StationBulkCreated(BaseModel):
    imported: int
    passwords: dict[str, str] = Field(
        description="Generated passwords by station id, shown only in this answer."
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(
        default=None, min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH
    )


class ConnectorOut(BaseModel):
    evse_id: int
    connector_id: int
    status: str
    error_code: str | None
    updated_at: datetime


class StationOut(BaseModel):
    id: str
    name: str | None
    location: Location | None
    state: StationState
    online: bool
    offline_while_charging: bool = Field(
        description="Charging when its link was lost: the charge awaits reconciliation."
    )
    ocpp_version: str | None
    security_profile: int = Field(
        description="The lowest OCPP security profile the station may connect with."
    )
    vendor: str | None
    model: str | None
    firmware_version: str | None
    last_seen_at: datetime | None
    connectors: list[ConnectorOut]

    @classmethod
    def from_station(cls, station: Station) -> StationOut:
        location = None
        if station.latitude is not None and station.longitude is not None:
            location = Location(latitude=station.latitude, longitude=station.longitude)
        state = StationState(station.state)
        return cls(
            id=station.id,
            name=station.name,
            location=location,
            state=state,
            online=station.online,
            offline_while_charging=state is StationState.CHARGING
            and not station.online,
            ocpp_version=station.ocpp_version,
            security_profile=station.security_profile,
            vendor=station.vendor,
            model=station.model,
            firmware_version=station.firmware_version,
            last_seen_at=station.last_seen_at,
            connectors=[
                ConnectorOut(
                    evse_id=c.evse_id,
                    connector_id=c.connector_id,
                    status=c.status,
                    error_code=c.error_code,
                    updated_at=c.updated_at,
                )
                for c in station.connectors
            ],
        )


class StationCreated(StationOut):
    password: str | None = Field(
        description="The generated password, shown only in this answer; null if given."
    )


class PasswordOut(BaseModel):
    password: str


class StationPage(BaseModel):
    items: list[StationOut]
    next_after: str | None = Field(
        description="Pass as `after` to get the next page; null on the last one."
    )


class StationEventOut(BaseModel):
    id: int
    kind: str
    security: bool
    source_address: str | None
    details: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_event(cls, event: StationEvent) -> StationEventOut:
        return cls(
            id=event.id,
            kind=event.kind,
            security=event.security,
            source_address=event.source_address,
            details=event.details,
            created_at=event.created_at,
        )


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ResetKind = Field(
        default=ResetKind.SOFT,
        description="soft: once idle (2.0.1 OnIdle); hard: at once (Immediate).",
    )


class ConnectorRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # 1.6 uses 0 for the whole station; here that is leaving the ids out.
    evse_id: int = Field(ge=1, le=1000, description="1.6: the connector.")
    connector_id: int = Field(default=1, ge=1, le=1000)


class AvailabilityChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    availability: Availability
    evse_id: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Leave out for the whole station; 1.6: the connector.",
    )
    connector_id: int | None = Field(default=None, ge=1, le=1000)


class CommandOut(BaseModel):
    action: str = Field(description="The OCPP action sent.")
    status: str = Field(
        description="What the station answered (Accepted, Rejected, Scheduled, "
        "Unlocked …)."
    )
