"""The rules of charging: starting a charge for a car, following it through the
station's transaction messages, and finishing its Charge Detail Record.

Two edges call in here. The HTTP API asks to start and stop (``start_session``,
``stop_session``); the OCPP handlers report what the station did
(``start_transaction_16``, ``transaction_event_201`` …). Each OCPP method is one
database transaction, committed before the handler answers the station.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import String, and_, cast, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.charging.errors import (
    ChargingSessionNotFound,
    ConnectorBusy,
    ConnectorNotFound,
    IdempotencyKeyReused,
    SessionNotStoppable,
    StationUnavailable,
)
from csms.charging.ids import (
    new_record_id,
    new_remote_start_id,
    new_transaction_id_16,
)
from csms.charging.meter import latest_energy, parse_timestamp
from csms.charging.models import ChargeDetailRecord
from csms.charging.state import ACTIVE_STATES, FREE_CONNECTOR_STATUSES, CdrState
from csms.clock import Clock
from csms.customers.service import AuthorizationStatus, CustomerService
from csms.events import EventFeed, charge_changed, charge_failed, charges_expired
from csms.ocpp.calls import CallFailed, CallTimeout, StationNotConnected
from csms.ocpp.framing import OcppVersion
from csms.stations.models import Connector, Station
from csms.stations.service import StationService
from csms.stations.state import StationState

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.charging")

_TRANSACTION_ID_ATTEMPTS = 5


class StationCommands(Protocol):
    """What charging needs of the gateway that holds a station's socket."""

    def version_of(self, station_id: str) -> OcppVersion | None: ...

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class StartOutcome:
    transaction_id: int
    status: AuthorizationStatus


@dataclass(frozen=True, slots=True)
class RecordFilter:
    customer_id: int | None = None
    station_id: str | None = None
    state: CdrState | None = None
    since: datetime | None = None
    until: datetime | None = None
    # True: only records with a flag (suspect data); False: only clean ones.
    flagged: bool | None = None


class ChargingService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        customers: CustomerService,
        stations: StationService,
        commands: StationCommands,
        start_timeout: timedelta,
        call_timeout: timedelta,
        events: EventFeed | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._customers = customers
        self._stations = stations
        self._commands = commands
        self._start_timeout = start_timeout
        self._call_timeout = call_timeout.total_seconds()
        # Told after each commit that wrote a record (live pages, metrics).
        self._events = events or EventFeed()

    # -- the customer's side -----------------------------------------------------

    async def start_session(
        self,
        customer_id: int,
        *,
        car_id: int,
        station_id: str,
        evse_id: int | None = None,
        connector_id: int | None = None,
        idempotency_key: str | None = None,
    ) -> ChargeDetailRecord:
        """Create a Pending record and ask the station to start charging the car."""
        if idempotency_key is not None:
            earlier = await self._find_by_idempotency_key(customer_id, idempotency_key)
            if earlier is not None:
                _check_same_request(earlier, car_id=car_id, station_id=station_id)
                return earlier

        await self._customers.get_car(customer_id, car_id)
        station = await self._stations.get(station_id)
        version = self._commands.version_of(station_id)
        if (
            version is None
            or not station.online
            or station.state == StationState.UNAVAILABLE.value
        ):
            raise StationUnavailable(station_id)
        connector = _choose_connector(
            station, evse_id=evse_id, connector_id=connector_id
        )
        token = await self._customers.get_primary_token(customer_id)

        now = self._clock.now()
        record = ChargeDetailRecord(
            id=new_record_id(now),
            state=CdrState.PENDING.value,
            station_id=station_id,
            evse_id=connector.evse_id,
            connector_id=connector.connector_id,
            customer_id=customer_id,
            car_id=car_id,
            id_token=token.value,
            remote_start_id=new_remote_start_id(),
            idempotency_key=idempotency_key,
            requested_at=now,
            flags=[],
            created_at=now,
            updated_at=now,
        )
        async with self._sessionmaker() as session:
            session.add(record)
            try:
                await session.commit()
            except IntegrityError as exc:
                # Either a retry with the same key won the race, or another
                # start holds the connector (the active-connector index).
                if idempotency_key is not None:
                    earlier = await self._find_by_idempotency_key(
                        customer_id, idempotency_key
                    )
                    if earlier is not None:
                        return earlier
                raise ConnectorBusy(station_id) from exc
        self._events.publish(charge_changed(record))
        log = logger.bind(record_id=record.id, station_id=station_id)
        log.info("charging.session.requested", connector_id=record.connector_id)

        failure = await self._send_remote_start(record, version)
        if failure is not None:
            log.warning("charging.session.failed", reason=failure)
            await self._fail(record.id, failure)
        return await self._get(record.id)

    async def _send_remote_start(
        self, record: ChargeDetailRecord, version: OcppVersion
    ) -> str | None:
        """Send the remote start; returns why it failed, or None."""
        assert record.id_token is not None
        if version is OcppVersion.V16:
            action = "RemoteStartTransaction"
            payload: dict[str, Any] = {
                "connectorId": record.connector_id,
                "idTag": record.id_token,
            }
        else:
            action = "RequestStartTransaction"
            payload = {
                "idToken": {"idToken": record.id_token, "type": "Central"},
                "remoteStartId": record.remote_start_id,
                "evseId": record.evse_id,
            }
        try:
            answer = await self._commands.call(
                record.station_id, action, payload, timeout=self._call_timeout
            )
        except CallTimeout:
            return "The station did not answer the start request."
        except CallFailed:
            return "The station could not process the start request."
        except StationNotConnected:
            return "The station went offline before the charge could start."
        if answer.get("status") != "Accepted":
            return "The station refused to start the charge."
        return None

    async def stop_session(
        self, customer_id: int, record_id: str
    ) -> ChargeDetailRecord:
        record = await self.get_for_customer(customer_id, record_id)
        if record.state != CdrState.STARTED.value or record.transaction_id is None:
            raise SessionNotStoppable(
                "Only a charge that has started can be stopped; "
                f"this one is {record.state}."
            )
        version = self._commands.version_of(record.station_id)
        if version is None:
            raise StationUnavailable(record.station_id)
        if version is OcppVersion.V16:
            action = "RemoteStopTransaction"
            payload: dict[str, Any] = {"transactionId": int(record.transaction_id)}
        else:
            action = "RequestStopTransaction"
            payload = {"transactionId": record.transaction_id}
        try:
            answer = await self._commands.call(
                record.station_id, action, payload, timeout=self._call_timeout
            )
        except StationNotConnected as exc:
            raise StationUnavailable(record.station_id) from exc
        except (CallTimeout, CallFailed) as exc:
            raise SessionNotStoppable(
                "The station did not accept the stop request; try again."
            ) from exc
        if answer.get("status") != "Accepted":
            raise SessionNotStoppable("The station refused to stop the charge.")
        logger.info(
            "charging.session.stop_requested",
            record_id=record.id,
            station_id=record.station_id,
        )
        return await self._get(record.id)

    async def get_for_customer(
        self, customer_id: int, record_id: str
    ) -> ChargeDetailRecord:
        async with self._sessionmaker() as session:
            record = await session.scalar(
                select(ChargeDetailRecord).where(
                    ChargeDetailRecord.id == record_id,
                    ChargeDetailRecord.customer_id == customer_id,
                )
            )
        if record is None:
            raise ChargingSessionNotFound(record_id)
        return record

    async def list_records(
        self, where: RecordFilter, *, before: str | None = None, limit: int = 50
    ) -> Sequence[ChargeDetailRecord]:
        """Records newest first, a page at a time (keyset on the time-ordered id)."""
        query = select(ChargeDetailRecord)
        if where.customer_id is not None:
            query = query.where(ChargeDetailRecord.customer_id == where.customer_id)
        if where.station_id is not None:
            query = query.where(ChargeDetailRecord.station_id == where.station_id)
        if where.state is not None:
            query = query.where(ChargeDetailRecord.state == where.state.value)
        if where.since is not None:
            query = query.where(ChargeDetailRecord.created_at >= where.since)
        if where.until is not None:
            query = query.where(ChargeDetailRecord.created_at < where.until)
        if where.flagged is not None:
            # The JSON list as text, the same on SQLite and PostgreSQL.
            unflagged = cast(ChargeDetailRecord.flags, String) == "[]"
            query = query.where(~unflagged if where.flagged else unflagged)
        if before is not None:
            query = query.where(ChargeDetailRecord.id < before)
        query = query.order_by(ChargeDetailRecord.id.desc()).limit(limit)
        async with self._sessionmaker() as session:
            return (await session.scalars(query)).all()

    async def fail_overdue_starts(self) -> int:
        """Pending records whose station never started the charge turn Failed."""
        deadline = self._clock.now() - self._start_timeout
        async with self._sessionmaker() as session:
            result = await session.execute(
                update(ChargeDetailRecord)
                .where(
                    ChargeDetailRecord.state == CdrState.PENDING.value,
                    ChargeDetailRecord.requested_at < deadline,
                )
                .values(
                    state=CdrState.FAILED.value,
                    failure_reason="The station did not start the charge in time.",
                    updated_at=self._clock.now(),
                )
            )
            await session.commit()
        failed = int(result.rowcount)  # type: ignore[attr-defined]
        if failed:
            self._events.publish(charges_expired(failed))
            logger.info("charging.session.start_timed_out", records=failed)
        return failed

    # -- the station's side ------------------------------------------------------

    async def authorize(self, id_token: str) -> AuthorizationStatus:
        return (await self._customers.authorize_token(id_token)).status

    async def start_transaction_16(
        self,
        station_id: str,
        *,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: datetime,
    ) -> StartOutcome:
        """A 1.6 StartTransaction: link it to the remote start it answers, or
        open a record for a charge started at the station itself."""
        authorization = await self._customers.authorize_token(id_tag)
        async with self._sessionmaker() as session:
            # A retry of a StartTransaction already stored gets the same id back.
            earlier = await session.scalar(
                select(ChargeDetailRecord).where(
                    ChargeDetailRecord.station_id == station_id,
                    ChargeDetailRecord.connector_id == connector_id,
                    ChargeDetailRecord.id_token == id_tag,
                    ChargeDetailRecord.meter_start_wh == meter_start,
                    ChargeDetailRecord.started_at == timestamp,
                    ChargeDetailRecord.transaction_id.is_not(None),
                )
            )
            if earlier is not None and earlier.transaction_id is not None:
                return StartOutcome(int(earlier.transaction_id), authorization.status)

            # 1.6 carries no id linking it to our RemoteStartTransaction:
            # correlate by station, connector, token and time window.
            record = await session.scalar(
                select(ChargeDetailRecord)
                .where(
                    ChargeDetailRecord.station_id == station_id,
                    ChargeDetailRecord.connector_id == connector_id,
                    ChargeDetailRecord.id_token == id_tag,
                    ChargeDetailRecord.state == CdrState.PENDING.value,
                    ChargeDetailRecord.requested_at
                    >= self._clock.now() - self._start_timeout,
                )
                .order_by(ChargeDetailRecord.requested_at.desc())
                .limit(1)
                .with_for_update()
            )
            if record is None:
                await self._finish_stale(
                    session, station_id, connector_id, connector_id
                )
                record = await self._new_local_record(
                    session,
                    station_id,
                    evse_id=connector_id,
                    connector_id=connector_id,
                    id_token=id_tag,
                    customer_id=authorization.customer_id,
                )
            _mark_started(record, started_at=timestamp, now=self._clock.now())
            record.meter_start_wh = meter_start
            record.meter_last_wh = meter_start
            record.energy_wh = 0
            if authorization.status is not AuthorizationStatus.ACCEPTED:
                record.flags = [*record.flags, "unauthorized_token"]
            transaction_id = await self._assign_transaction_id_16(session, record)
        self._events.publish(charge_changed(record))
        logger.info(
            "charging.session.started",
            record_id=record.id,
            station_id=station_id,
            transaction_id=transaction_id,
        )
        return StartOutcome(transaction_id, authorization.status)

    async def meter_values_16(
        self,
        station_id: str,
        *,
        transaction_id: int | None,
        meter_values: list[dict[str, Any]],
    ) -> None:
        reading = latest_energy(meter_values)
        if transaction_id is None or reading is None:
            return
        async with self._sessionmaker() as session:
            record = await _find_transaction(session, station_id, str(transaction_id))
            if record is None:
                logger.warning(
                    "charging.meter.unknown_transaction",
                    station_id=station_id,
                    transaction_id=transaction_id,
                )
                return
            _apply_reading(record, reading.wh, reading.timestamp, now=self._clock.now())
            await session.commit()
        self._events.publish(charge_changed(record))

    async def stop_transaction_16(
        self,
        station_id: str,
        *,
        transaction_id: int,
        meter_stop: int,
        timestamp: datetime,
        reason: str | None,
        transaction_data: list[dict[str, Any]] | None = None,
    ) -> None:
        async with self._sessionmaker() as session:
            record = await _find_transaction(session, station_id, str(transaction_id))
            if record is None:
                # TODO: store stops for unknown transactions in a journal and flag
                # them; today they are only logged, so such a charge is not billed.
                logger.warning(
                    "charging.stop.unknown_transaction",
                    station_id=station_id,
                    transaction_id=transaction_id,
                )
                return
            if record.state == CdrState.FINISHED.value:
                return
            reading = latest_energy(transaction_data or [])
            if reading is not None:
                _apply_reading(
                    record, reading.wh, reading.timestamp, now=self._clock.now()
                )
            _finish(
                record,
                meter_stop=meter_stop,
                stopped_at=timestamp,
                reason=reason or "Local",
                now=self._clock.now(),
            )
            await session.commit()
        self._events.publish(charge_changed(record))
        logger.info(
            "charging.session.finished",
            record_id=record.id,
            station_id=station_id,
            energy_wh=record.energy_wh,
        )

    async def transaction_event_201(
        self, station_id: str, payload: dict[str, Any]
    ) -> AuthorizationStatus | None:
        """A 2.0.1 TransactionEvent (E01..E15): Started, Updated or Ended."""
        event_type = payload["eventType"]
        info = payload["transactionInfo"]
        transaction_id = info["transactionId"]
        timestamp = parse_timestamp(payload["timestamp"])
        token = (payload.get("idToken") or {}).get("idToken")
        authorization = await self._customers.authorize_token(token) if token else None
        reading = latest_energy(payload.get("meterValue") or [])
        now = self._clock.now()

        async with self._sessionmaker() as session:
            record = await _find_transaction(session, station_id, transaction_id)
            if record is None:
                record = await self._open_record_201(
                    session,
                    station_id,
                    payload,
                    token=token,
                    customer_id=authorization.customer_id if authorization else None,
                )
                _mark_started(record, started_at=timestamp, now=now)
                record.transaction_id = transaction_id
                if reading is not None:
                    record.meter_start_wh = reading.wh
                if authorization and authorization.status is not (
                    AuthorizationStatus.ACCEPTED
                ):
                    record.flags = [*record.flags, "unauthorized_token"]
            elif token and record.id_token is None:
                record.id_token = token
            if reading is not None:
                if record.meter_start_wh is None:
                    record.meter_start_wh = reading.wh
                _apply_reading(record, reading.wh, reading.timestamp, now=now)
            if event_type == "Ended" and record.state != CdrState.FINISHED.value:
                _finish(
                    record,
                    meter_stop=reading.wh if reading else record.meter_last_wh,
                    stopped_at=timestamp,
                    reason=info.get("stoppedReason", "Local"),
                    now=now,
                )
            await session.commit()
        self._events.publish(charge_changed(record))
        logger.info(
            "charging.transaction.event",
            record_id=record.id,
            station_id=station_id,
            event_type=event_type,
            state=record.state,
        )
        return authorization.status if authorization else None

    # -- helpers ------------------------------------------------------------------

    async def _open_record_201(
        self,
        session: AsyncSession,
        station_id: str,
        payload: dict[str, Any],
        *,
        token: str | None,
        customer_id: int | None,
    ) -> ChargeDetailRecord:
        remote_start_id = payload["transactionInfo"].get("remoteStartId")
        evse = payload.get("evse") or {}
        if remote_start_id is not None:
            pending = await session.scalar(
                select(ChargeDetailRecord)
                .where(
                    ChargeDetailRecord.station_id == station_id,
                    ChargeDetailRecord.remote_start_id == remote_start_id,
                    ChargeDetailRecord.state == CdrState.PENDING.value,
                )
                .with_for_update()
            )
            if pending is not None:
                return pending
        evse_id = int(evse.get("id", 1))
        connector_id = int(evse.get("connectorId", 1))
        await self._finish_stale(session, station_id, evse_id, connector_id)
        return await self._new_local_record(
            session,
            station_id,
            evse_id=evse_id,
            connector_id=connector_id,
            id_token=token,
            customer_id=customer_id,
        )

    async def _new_local_record(
        self,
        session: AsyncSession,
        station_id: str,
        *,
        evse_id: int,
        connector_id: int,
        id_token: str | None,
        customer_id: int | None,
    ) -> ChargeDetailRecord:
        """A charge started at the station (an RFID card, no app)."""
        now = self._clock.now()
        car_id = (
            await self._customers.only_car_id(customer_id)
            if customer_id is not None
            else None
        )
        record = ChargeDetailRecord(
            id=new_record_id(now),
            state=CdrState.PENDING.value,
            station_id=station_id,
            evse_id=evse_id,
            connector_id=connector_id,
            customer_id=customer_id,
            car_id=car_id,
            id_token=id_token,
            flags=[],
            created_at=now,
            updated_at=now,
        )
        session.add(record)
        return record

    async def _finish_stale(
        self, session: AsyncSession, station_id: str, evse_id: int, connector_id: int
    ) -> None:
        """A new transaction on a connector ends any we still think is running
        there: its stop was lost. It is flagged, not deleted."""
        stale = (
            await session.scalars(
                select(ChargeDetailRecord)
                .where(
                    ChargeDetailRecord.station_id == station_id,
                    ChargeDetailRecord.evse_id == evse_id,
                    ChargeDetailRecord.connector_id == connector_id,
                    ChargeDetailRecord.state.in_(ACTIVE_STATES),
                )
                .with_for_update()
            )
        ).all()
        now = self._clock.now()
        for record in stale:
            if record.state == CdrState.PENDING.value:
                record.state = CdrState.FAILED.value
                record.failure_reason = "Another charge started on this connector."
            else:
                record.state = CdrState.FINISHED.value
                record.stop_reason = "Superseded"
                record.stopped_at = record.last_meter_at or now
                record.flags = [*record.flags, "stop_missing"]
            record.updated_at = now
        await session.flush()

    async def _assign_transaction_id_16(
        self, session: AsyncSession, record: ChargeDetailRecord
    ) -> int:
        for _ in range(_TRANSACTION_ID_ATTEMPTS):
            transaction_id = new_transaction_id_16()
            record.transaction_id = str(transaction_id)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                session.add(record)
                continue
            return transaction_id
        raise RuntimeError("no free transaction id after several attempts")

    async def _find_by_idempotency_key(
        self, customer_id: int, key: str
    ) -> ChargeDetailRecord | None:
        async with self._sessionmaker() as session:
            return await session.scalar(
                select(ChargeDetailRecord).where(
                    ChargeDetailRecord.customer_id == customer_id,
                    ChargeDetailRecord.idempotency_key == key,
                )
            )

    async def _fail(self, record_id: str, reason: str) -> None:
        async with self._sessionmaker() as session:
            await session.execute(
                update(ChargeDetailRecord)
                .where(
                    and_(
                        ChargeDetailRecord.id == record_id,
                        ChargeDetailRecord.state == CdrState.PENDING.value,
                    )
                )
                .values(
                    state=CdrState.FAILED.value,
                    failure_reason=reason,
                    updated_at=self._clock.now(),
                )
            )
            await session.commit()
        self._events.publish(charge_failed(record_id))

    async def _get(self, record_id: str) -> ChargeDetailRecord:
        async with self._sessionmaker() as session:
            record = await session.get(ChargeDetailRecord, record_id)
        if record is None:
            raise ChargingSessionNotFound(record_id)
        return record


def _check_same_request(
    record: ChargeDetailRecord, *, car_id: int, station_id: str
) -> None:
    if record.car_id != car_id or record.station_id != station_id:
        raise IdempotencyKeyReused()


def _choose_connector(
    station: Station, *, evse_id: int | None, connector_id: int | None
) -> Connector:
    outlets = [c for c in station.connectors if c.connector_id != 0]
    if evse_id is not None:
        outlets = [c for c in outlets if c.evse_id == evse_id]
    if connector_id is not None:
        outlets = [c for c in outlets if c.connector_id == connector_id]
    if not outlets:
        if evse_id is None and connector_id is None:
            raise ConnectorBusy(station.id)
        raise ConnectorNotFound(station.id)
    for connector in outlets:
        if connector.status in FREE_CONNECTOR_STATUSES:
            return connector
    raise ConnectorBusy(station.id)


async def _find_transaction(
    session: AsyncSession, station_id: str, transaction_id: str
) -> ChargeDetailRecord | None:
    # Always scoped to the sending station: one station can never touch
    # another's transaction.
    return await session.scalar(
        select(ChargeDetailRecord)
        .where(
            ChargeDetailRecord.station_id == station_id,
            ChargeDetailRecord.transaction_id == transaction_id,
        )
        .with_for_update()
    )


def _mark_started(
    record: ChargeDetailRecord, *, started_at: datetime, now: datetime
) -> None:
    record.state = CdrState.STARTED.value
    record.started_at = started_at
    record.failure_reason = None
    record.updated_at = now


def _apply_reading(
    record: ChargeDetailRecord, wh: int, at: datetime, *, now: datetime
) -> None:
    # A finished charge's meter is its stop meter: a reading delivered after the
    # stop (queued while offline, retried) changes nothing.
    if record.state == CdrState.FINISHED.value:
        return
    # Only a newer reading moves the meter: a late or repeated one counts nothing.
    if record.last_meter_at is not None and at < record.last_meter_at:
        return
    record.meter_last_wh = wh
    record.last_meter_at = at
    if record.meter_start_wh is not None:
        record.energy_wh = max(0, wh - record.meter_start_wh)
    record.updated_at = now


def _finish(
    record: ChargeDetailRecord,
    *,
    meter_stop: int | None,
    stopped_at: datetime,
    reason: str,
    now: datetime,
) -> None:
    record.state = CdrState.FINISHED.value
    record.meter_stop_wh = meter_stop
    if meter_stop is not None:
        record.meter_last_wh = meter_stop
        if record.meter_start_wh is not None:
            if meter_stop < record.meter_start_wh:
                record.flags = [*record.flags, "meter_went_backwards"]
            record.energy_wh = max(0, meter_stop - record.meter_start_wh)
    record.stopped_at = stopped_at
    record.stop_reason = reason
    record.updated_at = now
