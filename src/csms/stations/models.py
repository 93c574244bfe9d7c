"""Stations, their connectors and their event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from csms.db.base import Base, UtcDateTime

# OCPP 2.0.1 identifies a station by a string of at most 48 characters; 1.6's
# chargeBoxIdentity uses the same limit in practice.
STATION_ID_MAX_LENGTH = 48

# OCPP security profiles: 1 Basic auth, 2 TLS and Basic auth, 3 mutual TLS. A
# station registered at one is refused at any lower one.
LOWEST_SECURITY_PROFILE = 1
HIGHEST_SECURITY_PROFILE = 3


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(STATION_ID_MAX_LENGTH), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    password_hash: Mapped[str] = mapped_column(String(200))
    security_profile: Mapped[int] = mapped_column(Integer, default=1)

    vendor: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(50))
    serial_number: Mapped[str | None] = mapped_column(String(50))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    ocpp_version: Mapped[str | None] = mapped_column(String(16))

    state: Mapped[str] = mapped_column(String(16), default="Unavailable")
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    boot_accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    connected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The gateway holding the station's link, and how many links it has had:
    # a write or a call carrying an older epoch comes from a stale owner.
    owner: Mapped[str | None] = mapped_column(String(64))
    owner_epoch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    connectors: Mapped[list[Connector]] = relationship(
        back_populates="station",
        lazy="raise",
        order_by="(Connector.evse_id, Connector.connector_id)",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        Index("ix_stations_state", "state"),
        # Nearby search: an indexed bounding box on latitude, then longitude.
        Index("ix_stations_location", "latitude", "longitude"),
    )


class Connector(Base):
    """One connector of a station, with the last status the station reported.

    OCPP 1.6 knows only connector ids (0 is the station as a whole); they are
    kept with ``evse_id`` equal to the connector id. OCPP 2.0.1 addresses a
    connector by EVSE and connector id.
    """

    __tablename__ = "connectors"

    station_id: Mapped[str] = mapped_column(
        ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True
    )
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    station: Mapped[Station] = relationship(back_populates="connectors", lazy="raise")


class StationEvent(Base):
    """An append-only audit log: boots, connections, security events.

    ``station_id`` is not a foreign key: failed attempts name ids that do not
    exist, and they are exactly the ones an operator wants to see.
    """

    __tablename__ = "station_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    station_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50))
    security: Mapped[bool] = mapped_column(Boolean, default=False)
    source_address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_station_events_station_created", "station_id", "created_at"),
    )


class GatewayLease(Base):
    """A gateway process that is alive, as far as its last renewal says.

    Each gateway renews its lease on a timer; the worker marks the stations of
    a gateway whose lease ran out offline (it crashed, and its stations are
    reconnecting elsewhere or not at all).
    """

    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
