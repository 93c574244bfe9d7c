"""The rules for stations: registration, credentials, boot, connectors, liveness.

Each public method is one unit of work, committed before it returns, so that what
the gateway acknowledges to a station is already stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from csms.clock import Clock
from csms.errors import InvalidInput, StationAlreadyExists, StationNotFound
from csms.events import EventFeed, station_changed, station_event_recorded
from csms.stations.credentials import (
    InvalidPassword,
    generate_password,
    hash_password,
    validate_password,
)
from csms.stations.models import (
    HIGHEST_SECURITY_PROFILE,
    LOWEST_SECURITY_PROFILE,
    STATION_ID_MAX_LENGTH,
    Connector,
    GatewayLease,
    Station,
    StationEvent,
)
from csms.stations.state import StationState
from csms.stations.writer import (
    LinkOutcome,
    StaleOwner,
    StationWriter,
    derive,
)

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.stations")

__all__ = ["LinkOutcome", "StaleOwner", "StationService"]

# Station ids travel as the last URL path segment and as the Basic-auth user
# name, where ':' would split the credentials: keep to a safe set.
_STATION_ID_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.*+@"
)


@dataclass(frozen=True, slots=True)
class StationCredentials:
    station_id: str
    password_hash: str
    security_profile: int


@dataclass(frozen=True, slots=True)
class BootInfo:
    vendor: str
    model: str
    serial_number: str | None
    firmware_version: str | None


def validate_station_id(station_id: str) -> None:
    if not 1 <= len(station_id) <= STATION_ID_MAX_LENGTH:
        raise InvalidInput(f"A station id has 1 to {STATION_ID_MAX_LENGTH} characters.")
    if not set(station_id) <= _STATION_ID_CHARACTERS:
        raise InvalidInput("A station id may use letters, digits and - _ . * + @ only.")


def validate_security_profile(profile: int) -> None:
    if not LOWEST_SECURITY_PROFILE <= profile <= HIGHEST_SECURITY_PROFILE:
        raise InvalidInput(
            f"A security profile is {LOWEST_SECURITY_PROFILE} to "
            f"{HIGHEST_SECURITY_PROFILE}."
        )


def validate_location(latitude: float | None, longitude: float | None) -> None:
    if (latitude is None) != (longitude is None):
        raise InvalidInput("Give both latitude and longitude, or neither.")
    if latitude is not None and not -90.0 <= latitude <= 90.0:
        raise InvalidInput("Latitude must be between -90 and 90.")
    if longitude is not None and not -180.0 <= longitude <= 180.0:
        raise InvalidInput("Longitude must be between -180 and 180.")


class StationService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        events: EventFeed | None = None,
        leases: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        # Gateway leases on connections of their own where given: a pool
        # saturated by a connect storm must not let a live gateway's lease
        # lapse (the worker would mark its stations offline).
        self._leases = leases or sessionmaker
        self._clock = clock
        # Told after each commit that changed what a dashboard shows.
        self._events = events or EventFeed()
        # Link and state changes: group-committed, many stations per commit.
        self._writer = StationWriter(
            sessionmaker, clock=clock, publish=self._events.publish
        )

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The sessions this service works with, for read-only companions."""
        return self._sessionmaker

    # -- registration and credentials -------------------------------------------

    async def register(
        self,
        station_id: str,
        *,
        password: str | None = None,
        name: str | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
        security_profile: int = LOWEST_SECURITY_PROFILE,
    ) -> tuple[Station, str | None]:
        """Register a station; returns it and its password when one was generated.

        The station is refused on any listener below ``security_profile``.
        """
        validate_station_id(station_id)
        validate_location(latitude, longitude)
        validate_security_profile(security_profile)
        generated = None
        if password is None:
            password = generated = generate_password()
        else:
            _check_password(password)

        now = self._clock.now()
        station = Station(
            id=station_id,
            name=name,
            latitude=latitude,
            longitude=longitude,
            password_hash=hash_password(password, generated=generated is not None),
            security_profile=security_profile,
            state=StationState.UNAVAILABLE.value,
            online=False,
            created_at=now,
            updated_at=now,
            connectors=[],
        )
        async with self._sessionmaker() as session:
            session.add(station)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise StationAlreadyExists(station_id) from exc
        return station, generated

    async def set_password(self, station_id: str, *, password: str | None) -> str:
        """Replace a station's password; returns the new one (generated if None)."""
        generated = password is None
        if password is None:
            password = generate_password()
        else:
            _check_password(password)
        async with self._sessionmaker() as session:
            result = await session.execute(
                update(Station)
                .where(Station.id == station_id)
                .values(
                    password_hash=hash_password(password, generated=generated),
                    updated_at=self._clock.now(),
                )
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise StationNotFound(station_id)
            await session.commit()
        return password

    async def set_security_profile(self, station_id: str, profile: int) -> None:
        """Require ``profile`` or higher of the station from its next connection.

        A live connection at a lower profile is not closed by this.
        """
        # TODO: a station already connected below the new profile stays connected
        # until it reconnects; closing it needs the gateway, unknown to this service.
        validate_security_profile(profile)
        async with self._sessionmaker() as session:
            result = await session.execute(
                update(Station)
                .where(Station.id == station_id)
                .values(security_profile=profile, updated_at=self._clock.now())
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise StationNotFound(station_id)
            await session.commit()

    async def get_credentials(self, station_id: str) -> StationCredentials | None:
        async with self._sessionmaker() as session:
            row = (
                await session.execute(
                    select(Station.password_hash, Station.security_profile).where(
                        Station.id == station_id
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return StationCredentials(station_id, row.password_hash, row.security_profile)

    # -- reading ------------------------------------------------------------------

    async def get(self, station_id: str) -> Station:
        async with self._sessionmaker() as session:
            station = await session.scalar(
                select(Station)
                .where(Station.id == station_id)
                .options(selectinload(Station.connectors))
            )
        if station is None:
            raise StationNotFound(station_id)
        return station

    async def list_stations(
        self,
        *,
        state: StationState | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Sequence[Station]:
        """Stations ordered by id, a page at a time (keyset on the id)."""
        query = select(Station).options(selectinload(Station.connectors))
        if state is not None:
            query = query.where(Station.state == state.value)
        if after is not None:
            query = query.where(Station.id > after)
        query = query.order_by(Station.id).limit(limit)
        async with self._sessionmaker() as session:
            return (await session.scalars(query)).all()

    # -- the link -------------------------------------------------------------------

    async def mark_connected(
        self, station_id: str, *, ocpp_version: str, gateway: str = "local"
    ) -> LinkOutcome:
        """A link is open on ``gateway``: it becomes the station's owner, with
        a new epoch (returned in the outcome) that fences every older link."""

        def connect(_session: AsyncSession, station: Station, now: datetime) -> None:
            station.online = True
            station.ocpp_version = ocpp_version
            station.connected_at = now
            station.last_seen_at = now
            station.owner = gateway
            station.owner_epoch += 1

        return await self._writer.submit(station_id, connect)

    async def mark_offline(
        self, station_id: str, *, epoch: int | None = None
    ) -> LinkOutcome:
        """The link is gone (socket closed, or silent past its window).

        With ``epoch``, only while that link still owns the station: a link
        that a newer one superseded raises :class:`StaleOwner` and changes
        nothing.
        """

        def disconnect(_: AsyncSession, station: Station, _now: datetime) -> None:
            station.online = False

        return await self._writer.submit(station_id, disconnect, epoch=epoch)

    async def accept_boot(
        self, station_id: str, boot: BootInfo, *, epoch: int | None = None
    ) -> LinkOutcome:
        def booted(session: AsyncSession, station: Station, now: datetime) -> None:
            station.vendor = boot.vendor
            station.model = boot.model
            station.serial_number = boot.serial_number
            station.firmware_version = boot.firmware_version
            station.boot_accepted_at = now
            station.last_seen_at = now
            session.add(
                StationEvent(
                    station_id=station.id,
                    kind="boot",
                    security=False,
                    details={
                        "vendor": boot.vendor,
                        "model": boot.model,
                        "firmware_version": boot.firmware_version,
                    },
                    created_at=now,
                )
            )

        return await self._writer.submit(station_id, booted, epoch=epoch)

    async def update_connector(
        self,
        station_id: str,
        *,
        evse_id: int,
        connector_id: int,
        status: str,
        error_code: str | None = None,
        epoch: int | None = None,
    ) -> LinkOutcome:
        def reported(_session: AsyncSession, station: Station, now: datetime) -> None:
            for connector in station.connectors:
                if (connector.evse_id, connector.connector_id) == (
                    evse_id,
                    connector_id,
                ):
                    connector.status = status
                    connector.error_code = error_code
                    connector.updated_at = now
                    return
            station.connectors.append(
                Connector(
                    station_id=station.id,
                    evse_id=evse_id,
                    connector_id=connector_id,
                    status=status,
                    error_code=error_code,
                    updated_at=now,
                )
            )

        return await self._writer.submit(station_id, reported, epoch=epoch)

    async def record_last_seen(self, seen: Mapping[str, datetime]) -> None:
        """Store many stations' last-seen times in one statement (batched liveness)."""
        if not seen:
            return
        # A Core UPDATE over the table with many parameter sets: one round trip
        # per batch instead of one statement per heartbeat.
        table = Station.__table__
        assert isinstance(table, Table)
        statement = (
            update(table)
            .where(table.c.id == bindparam("station_id"))
            .values(last_seen_at=bindparam("seen_at"))
        )
        async with self._sessionmaker() as session:
            connection = await session.connection()
            # In id order, as every writer of many station rows locks them:
            # two batches locking in different orders deadlock each other.
            await connection.execute(
                statement,
                [{"station_id": key, "seen_at": seen[key]} for key in sorted(seen)],
            )
            await session.commit()

    async def mark_all_offline(self, *, owner: str | None = None) -> int:
        """No link is open, whatever the rows say: at start-up of the only
        gateway (every station), or of one gateway among several (``owner``:
        the stations it held before it stopped)."""
        query = (
            select(Station)
            .where(Station.online.is_(True))
            .options(selectinload(Station.connectors))
        )
        if owner is not None:
            query = query.where(Station.owner == owner)
        async with self._sessionmaker() as session:
            stations = (
                await session.scalars(query.order_by(Station.id).with_for_update())
            ).all()
            now = self._clock.now()
            for station in stations:
                station.online = False
                station.state = derive(station).value
                station.updated_at = now
            await session.commit()
        for station in stations:
            self._events.publish(station_changed(station))
        return len(stations)

    # -- gateways -------------------------------------------------------------------

    async def renew_gateway_lease(self, gateway: str, *, started: bool = False) -> None:
        """A gateway says it is alive (``started``: it has just started)."""
        now = self._clock.now()
        async with self._leases() as session:
            lease = await session.get(GatewayLease, gateway)
            if lease is None:
                session.add(GatewayLease(id=gateway, started_at=now, seen_at=now))
            else:
                lease.seen_at = now
                if started:
                    lease.started_at = now
            await session.commit()

    async def end_gateway_lease(self, gateway: str) -> None:
        async with self._leases() as session:
            lease = await session.get(GatewayLease, gateway)
            if lease is not None:
                await session.delete(lease)
                await session.commit()

    async def release_lapsed_gateways(self, *, lapse: timedelta) -> int:
        """Mark offline the stations of gateways whose lease ran out: they
        crashed, and their stations reconnect elsewhere (a new owner) or not."""
        cutoff = self._clock.now() - lapse
        async with self._sessionmaker() as session:
            lapsed = (
                await session.scalars(
                    select(GatewayLease.id).where(GatewayLease.seen_at < cutoff)
                )
            ).all()
        released = 0
        for gateway in lapsed:
            released += await self.mark_all_offline(owner=gateway)
            await self.end_gateway_lease(gateway)
            logger.warning(
                "stations.gateway.lapsed", gateway=gateway, stations_released=released
            )
        return released

    # -- audit --------------------------------------------------------------------

    async def record_event(
        self,
        station_id: str,
        kind: str,
        *,
        security: bool = False,
        source_address: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        async with self._sessionmaker() as session:
            session.add(
                StationEvent(
                    station_id=station_id[:200],
                    kind=kind,
                    security=security,
                    source_address=source_address,
                    details=details or {},
                    created_at=self._clock.now(),
                )
            )
            await session.commit()
        self._events.publish(
            station_event_recorded(
                station_id[:200], kind, security=security, details=details or {}
            )
        )

    async def list_events(
        self, station_id: str, *, limit: int = 50
    ) -> Sequence[StationEvent]:
        async with self._sessionmaker() as session:
            return (
                await session.scalars(
                    select(StationEvent)
                    .where(StationEvent.station_id == station_id)
                    .order_by(StationEvent.id.desc())
                    .limit(limit)
                )
            ).all()


def _check_password(password: str) -> None:
    try:
        validate_password(password)
    except InvalidPassword as exc:
        raise InvalidInput(str(exc)) from exc
