"""The rules of charging: starting a charge for a car, following it through the
station's transaction messages, and finishing its Charge Detail Record.

Two edges call in here. The HTTP API asks to start and stop (``start_session``,
``stop_session``); the OCPP handlers report what the station did
(``start_transaction_16``, ``transaction_event_201`` …). Each OCPP message is
written to the journal (``csms.charging.journal``) together with its effect on
the Charge Detail Record, in one database transaction committed before the
handler answers the station; meter readings of several stations may share one
(ADR 0009).

Nothing a station sends about a charge is refused for its content: a retry is
journaled as a duplicate and not applied, and what is suspect (a clock that
cannot be right, a meter running backwards, a stop for a transaction nobody
knows) is stored and flagged on the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

import structlog
from sqlalchemy import (
    JSON,
    Integer,
    String,
    bindparam,
    case,
    cast,
    delete,
    distinct,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
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
from csms.charging.journal import (
    MAX_CONNECTOR_ID,
    Received,
    TransactionMessage,
    entry,
    has_sequence_gap,
    is_plausible_time,
    storable_meter,
    storable_text,
    write_entries,
)
from csms.charging.meter import EnergyReading, latest_energy, parse_timestamp
from csms.charging.models import (
    CONFIRMED_COMPLETE,
    ActiveCharge,
    ChargeDetailRecord,
    IdempotencyKey,
    TransactionKey,
    first_record_id_at,
)
from csms.charging.samples import MeterSampleSink, Sample, read_samples
from csms.charging.state import ACTIVE_STATES, FREE_CONNECTOR_STATUSES, CdrState
from csms.clock import Clock
from csms.customers.service import (
    AuthorizationStatus,
    CustomerService,
    TokenAuthorization,
    only_car_id,
)
from csms.db.group_commit import GroupCommit
from csms.events import EventFeed, charge_changed, charge_failed, charges_expired
from csms.faults import crash_point
from csms.ocpp.calls import CallFailed, CallTimeout, StationNotConnected
from csms.ocpp.framing import OcppVersion
from csms.stations.models import Connector, Station
from csms.stations.service import StationService
from csms.stations.state import StationState

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.charging")

_TRANSACTION_ID_ATTEMPTS = 5
# How many of a station's latest journal rows a 1.6 resend is looked for in.
_RESEND_LOOKBACK = 20
# A record finished without the station's own stop, which may still come.
_STOP_MISSING_FLAGS = frozenset({"closed_without_stop", "stop_missing"})
# A transaction's journal rows are received no earlier than its record was
# made, give or take the time a message waits to be handled: looking from a
# day before keeps a lookup to the latest one or two month partitions.
_JOURNAL_LOOKBEHIND = timedelta(days=1)


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


# TODO: 1.6 MeterValues and 2.0.1 Updated events are group-committed (~250
# and ~300 µs of CPU each when 50 stations send at once, bench_messages), but
# a start or stop costs ~3 ms and an Authorize ~0.5 ms, each in a transaction
# (or a read) of its own with several round trips (~200 µs of driver and
# greenlet work each): the world's ~56 starts or stops a second cost a tenth
# of a core. Their remote-start correlation and connector claim are what
# makes batching them more than a copy of _commit_meter_values.
# TODO: transaction messages are not fenced by the station's owner epoch: one
# arriving on a link a newer one superseded is journaled and applied like a
# resend (matched by business key, never counted twice), where a fenced write
# would refuse it and leave it to the station's own resend on the live link.
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
        samples: MeterSampleSink | None = None,
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
        # Given the meter values of each applied message after its commit:
        # downsampled chart data, written later (the journal holds them all).
        self._samples = samples
        # 1.6 MeterValues of many stations share a transaction under load.
        self._meter_batches = GroupCommit(
            partial(_commit_meter_values, sessionmaker),
            max_batch=_METER_BATCH,
            name="meter-values",
        )
        # And so do 2.0.1 Updated events of transactions already known.
        self._updated_batches = GroupCommit(
            partial(_commit_updated_events, sessionmaker),
            max_batch=_METER_BATCH,
            name="updated-events",
        )

    @property
    def group_commits(self) -> dict[str, tuple[int, int]]:
        """How many messages went into how many commits so far, per kind."""
        return {
            "MeterValues": (self._meter_batches.messages, self._meter_batches.commits),
            "TransactionEvent Updated": (
                self._updated_batches.messages,
                self._updated_batches.commits,
            ),
        }

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
                await _claim_connector(session, record)
                if idempotency_key is not None:
                    session.add(
                        IdempotencyKey(
                            customer_id=customer_id,
                            idempotency_key=idempotency_key,
                            record_id=record.id,
                        )
                    )
                await session.commit()
            except IntegrityError as exc:
                # Either a retry with the same key won the race, or another
                # start holds the connector (``active_charges``).
                await session.rollback()
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
        await request_stop(self._commands, record, timeout=self._call_timeout)
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
            failed_ids = (
                await session.scalars(
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
                    .returning(ChargeDetailRecord.id)
                )
            ).all()
            await release_connectors(session, *failed_ids)
            await session.commit()
        failed = len(failed_ids)
        if failed:
            self._events.publish(charges_expired(failed))
            logger.info("charging.session.start_timed_out", records=failed)
        return failed

    # -- the station's side ------------------------------------------------------
    #
    # Each method below is one database transaction holding both the message's
    # journal row and its effect on the record, committed before the handler
    # answers: acknowledged means stored, and a retry finds what it repeats.
    # (1.6 MeterValues and 2.0.1 Updated events of several stations may share
    # one transaction.)

    async def authorize(self, id_token: str) -> AuthorizationStatus:
        return (await self._customers.authorize_token(storable_text(id_token))).status

    async def start_transaction_16(
        self,
        station_id: str,
        *,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: datetime,
        received: Received,
    ) -> StartOutcome:
        """A 1.6 StartTransaction: link it to the remote start it answers, or
        open a record for a charge started at the station itself."""
        id_tag = storable_text(id_tag)
        authorization = await self._customers.authorize_token(id_tag)
        time_flags = _time_flags(timestamp, received)
        # Values no record can hold are kept in the journal only, and flagged.
        if storable_meter(meter_start) is None:
            time_flags.append("implausible_meter")
        if not 0 <= connector_id <= MAX_CONNECTOR_ID:
            time_flags.append("implausible_connector")
            connector_id = 0

        def journal(record: ChargeDetailRecord, *, duplicate: bool) -> dict[str, Any]:
            return entry(
                received,
                station_id=station_id,
                action="StartTransaction",
                transaction_id=record.transaction_id,
                record_id=record.id,
                message_time=timestamp,
                duplicate=duplicate,
                flags=time_flags,
            )

        async with self._sessionmaker() as session:
            # A retry of a StartTransaction already stored gets the same id back
            # (1.6 has no sequence number: the message's content is its key).
            earlier = await session.scalar(
                _EARLIER_START_16,
                {
                    "station_id": station_id,
                    "connector_id": connector_id,
                    "id_token": id_tag,
                    "meter_start_wh": storable_meter(meter_start),
                    "started_at": timestamp,
                },
            )
            if earlier is not None and earlier.transaction_id is not None:
                await write_entries(session, [journal(earlier, duplicate=True)])
                await session.commit()
                logger.info(
                    "charging.transaction.duplicate",
                    record_id=earlier.id,
                    station_id=station_id,
                    action="StartTransaction",
                )
                return StartOutcome(int(earlier.transaction_id), authorization.status)

            # 1.6 carries no id linking it to our RemoteStartTransaction:
            # correlate by station, connector, token and time window. A
            # record's id is made when it is requested: the same window on
            # the id keeps the search to the latest month partitions.
            window_start = self._clock.now() - self._start_timeout
            record = await session.scalar(
                _PENDING_START_16,
                {
                    "first_id": first_record_id_at(window_start),
                    "station_id": station_id,
                    "connector_id": connector_id,
                    "id_token": id_tag,
                    "window_start": window_start,
                },
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
            record.meter_start_wh = storable_meter(meter_start)
            record.meter_last_wh = storable_meter(meter_start)
            record.energy_wh = 0
            if authorization.status is not AuthorizationStatus.ACCEPTED:
                _add_flags(record, "unauthorized_token")
            _add_flags(record, *time_flags)
            transaction_id = await _free_transaction_id_16(session, station_id)
            _hold_transaction_id(
                session, record, station_id, _transaction_key_16(transaction_id)
            )
            await write_entries(session, [journal(record, duplicate=False)])
            crash_point("before_commit", "StartTransaction")
            await session.commit()
            crash_point("after_commit", "StartTransaction")
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
        received: Received,
    ) -> None:
        reading = latest_energy(meter_values)
        flags = [] if reading is None else _time_flags(reading.timestamp, received)
        record = await self._meter_batches.submit(
            _MeterMessage(station_id, transaction_id, reading, flags, received)
        )
        if record is not None:
            self._sample(record.id, meter_values, received)
            self._events.publish(charge_changed(record))

    async def stop_transaction_16(
        self,
        station_id: str,
        *,
        transaction_id: int,
        meter_stop: int,
        timestamp: datetime,
        reason: str | None,
        id_tag: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
        received: Received,
    ) -> AuthorizationStatus | None:
        """A 1.6 StopTransaction; returns the status of its idTag, if it has one.

        A retry (the same transaction id again) is journaled and not applied. A
        stop for a transaction nobody knows still makes a record, flagged, so
        that the charge can be billed; a stop for a record closed without one
        amends it.
        """
        id_tag = storable_text(id_tag) if id_tag else None
        authorization = (
            await self._customers.authorize_token(id_tag) if id_tag else None
        )
        time_flags = _time_flags(timestamp, received)
        if storable_meter(meter_stop) is None:
            time_flags.append("implausible_meter")
        now = self._clock.now()
        async with self._sessionmaker() as session:
            record = await _find_transaction(
                session, station_id, _transaction_key_16(transaction_id)
            )
            duplicate = False
            amended = False
            if record is None:
                logger.warning(
                    "charging.stop.unknown_transaction",
                    station_id=station_id,
                    transaction_id=transaction_id,
                )
                # TODO: a 1.6 stop names no connector and no start meter: the
                # record has neither, so its energy must be billed by hand.
                record = await self._new_unknown_record(
                    session,
                    station_id,
                    transaction_id=_transaction_key_16(transaction_id),
                    evse_id=0,
                    connector_id=0,
                    id_token=id_tag,
                    customer_id=authorization.customer_id if authorization else None,
                )
                _finish(
                    record,
                    meter_stop=storable_meter(meter_stop),
                    stopped_at=timestamp,
                    reason=reason or "Local",
                    now=now,
                )
            elif not _awaits_stop(record):
                duplicate = True
            else:
                amended = record.state == CdrState.FINISHED.value
                reading = latest_energy(transaction_data or [])
                if reading is not None:
                    _apply_reading(record, reading, received_at=received.received_at)
                _finish(
                    record,
                    meter_stop=storable_meter(meter_stop),
                    stopped_at=timestamp,
                    reason=reason or "Local",
                    now=now,
                )
            if not duplicate:
                _add_flags(record, *time_flags)
                await release_connectors(session, record.id)
            await write_entries(
                session,
                [
                    entry(
                        received,
                        station_id=station_id,
                        action="StopTransaction",
                        transaction_id=_transaction_key_16(transaction_id),
                        record_id=record.id,
                        message_time=timestamp,
                        duplicate=duplicate,
                        flags=time_flags,
                    )
                ],
            )
            crash_point("before_commit", "StopTransaction")
            await session.commit()
            crash_point("after_commit", "StopTransaction")
        if duplicate:
            logger.info(
                "charging.transaction.duplicate",
                record_id=record.id,
                station_id=station_id,
                action="StopTransaction",
            )
        else:
            self._sample(
                record.id,
                transaction_data or [],
                received,
                ended=True,
                final=_stop_sample(record, timestamp, received),
            )
            self._events.publish(charge_changed(record))
            logger.info(
                "charging.session.finished",
                record_id=record.id,
                station_id=station_id,
                energy_wh=record.energy_wh,
                amended=amended,
            )
        return authorization.status if authorization else None

    async def transaction_event_201(
        self, station_id: str, payload: dict[str, Any], *, received: Received
    ) -> AuthorizationStatus | None:
        """A 2.0.1 TransactionEvent (E01..E15): Started, Updated or Ended.

        Retries are recognised by (station, transactionId, seqNo): a repeated
        event is journaled as a duplicate, not applied again, and answered as
        before. Events may arrive out of order (queued while offline).
        """
        token = (payload.get("idToken") or {}).get("idToken")
        token = storable_text(token) if token else None
        if payload["eventType"] == "Updated" and token is None:
            # The bulk of a charge's events: group-committed with others'.
            outcome = await self._updated_batches.submit(
                _updated_event(station_id, payload, received)
            )
            if outcome is not None:
                self._after_event(outcome, payload, received)
                return None
        authorization = await self._customers.authorize_token(token) if token else None
        try:
            await self._apply_transaction_event(
                station_id, payload, received=received, authorization=authorization
            )
        except IntegrityError:
            # A copy of this event (or another first event of this transaction)
            # committed concurrently: looking again finds it.
            await self._apply_transaction_event(
                station_id, payload, received=received, authorization=authorization
            )
        return authorization.status if authorization else None

    async def _apply_transaction_event(
        self,
        station_id: str,
        payload: dict[str, Any],
        *,
        received: Received,
        authorization: TokenAuthorization | None,
    ) -> None:
        event_type = payload["eventType"]
        info = payload["transactionInfo"]
        transaction_id = storable_text(info["transactionId"])
        seq_no = int(payload["seqNo"])
        timestamp = parse_timestamp(payload["timestamp"])
        token = (payload.get("idToken") or {}).get("idToken")
        token = storable_text(token) if token else None
        reading = latest_energy(payload.get("meterValue") or [])
        time_flags = _time_flags(timestamp, received)
        now = self._clock.now()

        async with self._sessionmaker() as session:

            async def journal(record: ChargeDetailRecord, *, duplicate: bool) -> None:
                await write_entries(
                    session,
                    [
                        entry(
                            received,
                            station_id=station_id,
                            action="TransactionEvent",
                            transaction_id=transaction_id,
                            record_id=record.id,
                            message_time=timestamp,
                            seq_no=seq_no,
                            event_type=event_type,
                            duplicate=duplicate,
                            flags=time_flags,
                        )
                    ],
                )

            # The record is locked first, so that a concurrent copy of this
            # event waits here and then finds the first one in the journal.
            record = await _find_transaction(session, station_id, transaction_id)
            sequence = (
                None
                if record is None
                else await _sequence_so_far(
                    session, record, station_id, transaction_id, seq_no
                )
            )
            if sequence is not None and sequence.seen:
                assert record is not None
                await journal(record, duplicate=True)
                await session.commit()
                self._after_event(
                    _EventOutcome(record, duplicate=True), payload, received
                )
                return

            customer_id = authorization.customer_id if authorization else None
            if record is None and event_type == "Ended":
                logger.warning(
                    "charging.stop.unknown_transaction",
                    station_id=station_id,
                    transaction_id=transaction_id,
                )
                evse = payload.get("evse") or {}
                record = await self._new_unknown_record(
                    session,
                    station_id,
                    transaction_id=transaction_id,
                    evse_id=_storable_connector(evse.get("id", 0)),
                    connector_id=_storable_connector(evse.get("connectorId", 0)),
                    id_token=token,
                    customer_id=customer_id,
                )
                _finish(
                    record,
                    meter_stop=reading.wh if reading else None,
                    stopped_at=timestamp,
                    reason=info.get("stoppedReason", "Local"),
                    now=now,
                )
            elif record is None:
                # The first event of this transaction we hear of: its Started,
                # or a later one whose Started is delayed or lost.
                record = await self._open_record_201(
                    session,
                    station_id,
                    payload,
                    token=token,
                    customer_id=customer_id,
                )
                _mark_started(record, started_at=timestamp, now=now)
                _hold_transaction_id(session, record, station_id, transaction_id)
                if authorization and authorization.status is not (
                    AuthorizationStatus.ACCEPTED
                ):
                    _add_flags(record, "unauthorized_token")
            elif token and record.id_token is None:
                record.id_token = token
            _add_flags(record, *time_flags)

            # A Started arriving after later events still tells when, and from
            # which meter value, the charge began.
            if event_type == "Started" and record.state == CdrState.STARTED.value:
                record.started_at = timestamp
                if reading is not None:
                    record.meter_start_wh = reading.wh
                    if record.meter_last_wh is not None:
                        record.energy_wh = max(0, record.meter_last_wh - reading.wh)
            if reading is not None:
                _apply_event_reading(record, reading, received_at=received.received_at)
            if event_type == "Ended" and _awaits_stop(record):
                _finish(
                    record,
                    meter_stop=reading.wh if reading else record.meter_last_wh,
                    stopped_at=timestamp,
                    reason=info.get("stoppedReason", "Local"),
                    now=now,
                )

            if record.state not in ACTIVE_STATES:
                await release_connectors(session, record.id)
            if sequence is None:
                # A record made by this event: its transaction may still have
                # journal rows of its own (of a record since dropped).
                sequence = await _sequence_so_far(
                    session, record, station_id, transaction_id, seq_no
                )
            await journal(record, duplicate=False)
            _flag_sequence_gap(record, sequence.with_number(seq_no))
            crash_point("before_commit", "TransactionEvent")
            await session.commit()
            crash_point("after_commit", "TransactionEvent")
        self._after_event(_EventOutcome(record, duplicate=False), payload, received)

    def _after_event(
        self, outcome: _EventOutcome, payload: dict[str, Any], received: Received
    ) -> None:
        """What follows a 2.0.1 event's commit: chart samples, the live event,
        the log line."""
        record = outcome.record
        if outcome.duplicate:
            logger.info(
                "charging.transaction.duplicate",
                record_id=record.id,
                station_id=record.station_id,
                action="TransactionEvent",
                seq_no=payload["seqNo"],
            )
            return
        event_type = payload["eventType"]
        self._sample(
            record.id,
            payload.get("meterValue") or [],
            received,
            ended=event_type == "Ended",
        )
        self._events.publish(charge_changed(record))
        logger.info(
            "charging.transaction.event",
            record_id=record.id,
            station_id=record.station_id,
            event_type=event_type,
            seq_no=payload["seqNo"],
            state=record.state,
        )

    # -- reconciliation ------------------------------------------------------------

    async def close_offline_charge(
        self, record_id: str, *, reason: str, stopped_at: datetime
    ) -> ChargeDetailRecord:
        """Finish a Started record whose station never came back to stop it.

        The record keeps the energy of its last reading and is flagged
        ``closed_without_stop`` and ``incomplete``; a stop that arrives later
        still amends it. A record not Started is returned unchanged.
        """
        async with self._sessionmaker() as session:
            record = await session.get(
                ChargeDetailRecord, record_id, with_for_update=True
            )
            if record is None:
                raise ChargingSessionNotFound(record_id)
            if record.state != CdrState.STARTED.value:
                return record
            record.state = CdrState.FINISHED.value
            record.stop_reason = reason
            record.stopped_at = stopped_at
            record.updated_at = self._clock.now()
            _add_flags(record, "closed_without_stop", "incomplete")
            await release_connectors(session, record.id)
            await session.commit()
        self._events.publish(charge_changed(record))
        logger.info(
            "charging.session.closed_offline",
            record_id=record.id,
            station_id=record.station_id,
            reason=reason,
            energy_wh=record.energy_wh,
        )
        return record

    async def mark_complete(
        self, station_id: str, transaction_id: str, reason: str
    ) -> ChargeDetailRecord:
        """Record that the station confirmed nothing more of a finished charge
        is queued: whatever is still missing is lost, and the record complete.

        A record not Finished yet is returned unchanged (close it first).
        """
        async with self._sessionmaker() as session:
            record = await _find_transaction(session, station_id, transaction_id)
            if record is None:
                raise ChargingSessionNotFound(transaction_id)
            if record.state != CdrState.FINISHED.value:
                return record
            _add_flags(record, CONFIRMED_COMPLETE)
            record.updated_at = self._clock.now()
            await session.commit()
        self._events.publish(charge_changed(record))
        logger.info(
            "charging.record.confirmed_complete",
            record_id=record.id,
            station_id=station_id,
            reason=reason,
        )
        return record

    # -- helpers ------------------------------------------------------------------

    def _sample(
        self,
        record_id: str,
        meter_values: list[dict[str, Any]],
        received: Received,
        *,
        ended: bool = False,
        final: Sample | None = None,
    ) -> None:
        """Hand the readings of a message applied and committed to the sink."""
        if self._samples is None:
            return
        samples = read_samples(
            record_id, meter_values, received_at=received.received_at
        )
        if final is not None and (
            not samples or samples[-1].sampled_at < final.sampled_at
        ):
            samples.append(final)
        if samples:
            self._samples.add(samples, final=ended)

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
                _PENDING_START_201,
                {"station_id": station_id, "remote_start_id": remote_start_id},
            )
            if pending is not None:
                return pending
        evse_id = _storable_connector(evse.get("id", 1))
        connector_id = _storable_connector(evse.get("connectorId", 1))
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
            await only_car_id(session, customer_id) if customer_id is not None else None
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
        await _claim_connector(session, record)
        return record

    async def _finish_stale(
        self, session: AsyncSession, station_id: str, evse_id: int, connector_id: int
    ) -> None:
        """A new transaction on a connector ends any we still think is running
        there: its stop was lost. It is flagged, not deleted."""
        stale = (
            await session.scalars(
                _ACTIVE_ON_CONNECTOR,
                {
                    "station_id": station_id,
                    "evse_id": evse_id,
                    "connector_id": connector_id,
                },
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
                _add_flags(record, "stop_missing")
            record.updated_at = now
        await release_connectors(session, *(record.id for record in stale))
        await session.flush()

    async def _new_unknown_record(
        self,
        session: AsyncSession,
        station_id: str,
        *,
        transaction_id: str,
        evse_id: int,
        connector_id: int,
        id_token: str | None,
        customer_id: int | None,
    ) -> ChargeDetailRecord:
        """A record for the stop of a transaction we never heard start: made
        Finished at once, so that it never holds its connector."""
        now = self._clock.now()
        car_id = (
            await only_car_id(session, customer_id) if customer_id is not None else None
        )
        record = ChargeDetailRecord(
            id=new_record_id(now),
            state=CdrState.FINISHED.value,
            station_id=station_id,
            evse_id=evse_id,
            connector_id=connector_id,
            customer_id=customer_id,
            car_id=car_id,
            id_token=id_token,
            flags=["unknown_transaction"],
            created_at=now,
            updated_at=now,
        )
        session.add(record)
        _hold_transaction_id(session, record, station_id, transaction_id)
        return record

    async def _find_by_idempotency_key(
        self, customer_id: int, key: str
    ) -> ChargeDetailRecord | None:
        async with self._sessionmaker() as session:
            record_id = await session.scalar(
                select(IdempotencyKey.record_id).where(
                    IdempotencyKey.customer_id == customer_id,
                    IdempotencyKey.idempotency_key == key,
                )
            )
            if record_id is None:
                return None
            return await session.get(ChargeDetailRecord, record_id)

    async def _fail(self, record_id: str, reason: str) -> None:
        async with self._sessionmaker() as session:
            failed = await session.scalar(
                update(ChargeDetailRecord)
                .where(
                    ChargeDetailRecord.id == record_id,
                    ChargeDetailRecord.state == CdrState.PENDING.value,
                )
                .values(
                    state=CdrState.FAILED.value,
                    failure_reason=reason,
                    updated_at=self._clock.now(),
                )
                .returning(ChargeDetailRecord.id)
            )
            if failed is not None:
                await release_connectors(session, failed)
            await session.commit()
        self._events.publish(charge_failed(record_id))

    async def _get(self, record_id: str) -> ChargeDetailRecord:
        async with self._sessionmaker() as session:
            record = await session.get(ChargeDetailRecord, record_id)
        if record is None:
            raise ChargingSessionNotFound(record_id)
        return record


# The statements a start or stop runs, built once: building and keying one
# for the statement cache costs ~130 µs of CPU per call (bench_messages).

# A 1.6 StartTransaction stored already: the same content (1.6 has no key).
_EARLIER_START_16 = select(ChargeDetailRecord).where(
    ChargeDetailRecord.station_id == bindparam("station_id"),
    ChargeDetailRecord.connector_id == bindparam("connector_id"),
    ChargeDetailRecord.id_token == bindparam("id_token"),
    ChargeDetailRecord.meter_start_wh == bindparam("meter_start_wh"),
    ChargeDetailRecord.started_at == bindparam("started_at"),
    ChargeDetailRecord.transaction_id.is_not(None),
)
# The remote start a 1.6 StartTransaction answers, latest first, locked.
_PENDING_START_16 = (
    select(ChargeDetailRecord)
    .where(
        ChargeDetailRecord.id >= bindparam("first_id"),
        ChargeDetailRecord.station_id == bindparam("station_id"),
        ChargeDetailRecord.connector_id == bindparam("connector_id"),
        ChargeDetailRecord.id_token == bindparam("id_token"),
        ChargeDetailRecord.state == CdrState.PENDING.value,
        ChargeDetailRecord.requested_at >= bindparam("window_start"),
    )
    .order_by(ChargeDetailRecord.requested_at.desc())
    .limit(1)
    .with_for_update()
)
# The remote start a 2.0.1 Started event names by its remoteStartId, locked.
_PENDING_START_201 = (
    select(ChargeDetailRecord)
    .where(
        ChargeDetailRecord.station_id == bindparam("station_id"),
        ChargeDetailRecord.remote_start_id == bindparam("remote_start_id"),
        ChargeDetailRecord.state == CdrState.PENDING.value,
    )
    .with_for_update()
)
_ACTIVE_ON_CONNECTOR = (
    select(ChargeDetailRecord)
    .where(
        ChargeDetailRecord.station_id == bindparam("station_id"),
        ChargeDetailRecord.evse_id == bindparam("evse_id"),
        ChargeDetailRecord.connector_id == bindparam("connector_id"),
        ChargeDetailRecord.state.in_(ACTIVE_STATES),
    )
    .with_for_update()
)
_AT_CONNECTOR = (
    ActiveCharge.station_id == bindparam("station_id"),
    ActiveCharge.evse_id == bindparam("evse_id"),
    ActiveCharge.connector_id == bindparam("connector_id"),
)
_CONNECTOR_HOLDER = (
    select(ActiveCharge.record_id).where(*_AT_CONNECTOR).with_for_update()
)
_RECORD_STATE = select(ChargeDetailRecord.state).where(
    ChargeDetailRecord.id == bindparam("record_id")
)
# No ActiveCharge is ever loaded as an object: nothing in a session to update.
_RELEASE_CONNECTOR = (
    delete(ActiveCharge)
    .where(*_AT_CONNECTOR, ActiveCharge.record_id == bindparam("record_id"))
    .execution_options(synchronize_session=False)
)
_CLAIM_CONNECTOR = insert(ActiveCharge)
_RELEASE_RECORDS = (
    delete(ActiveCharge)
    .where(ActiveCharge.record_id.in_(bindparam("record_ids", expanding=True)))
    .execution_options(synchronize_session=False)
)
_TRANSACTION_KEY_OWNER = select(TransactionKey.record_id).where(
    TransactionKey.station_id == bindparam("station_id"),
    TransactionKey.transaction_id == bindparam("transaction_id"),
)


# Only rows with the message's id are read back (almost always none): the
# payloads of the station's latest rows are not decoded to be compared.
_LATEST_MESSAGES = (
    select(TransactionMessage.message_id, TransactionMessage.payload)
    .where(
        TransactionMessage.station_id == bindparam("station_id"),
        TransactionMessage.action == bindparam("action"),
    )
    .order_by(TransactionMessage.id.desc())
    .limit(_RESEND_LOOKBACK)
    .subquery()
)
_SAME_MESSAGE_ID = select(_LATEST_MESSAGES.c.payload).where(
    _LATEST_MESSAGES.c.message_id == bindparam("message_id")
)


async def _is_resent_16(
    session: AsyncSession, station_id: str, action: str, received: Received
) -> bool:
    same_id = await session.execute(
        _SAME_MESSAGE_ID,
        {
            "station_id": station_id,
            "action": action,
            "message_id": storable_text(received.message_id),
        },
    )
    return any(row.payload == received.payload for row in same_id)


# -- 1.6 MeterValues, group-committed -------------------------------------------

# Large enough that a busy second's meter values share a few commits, small
# enough that one batch's transaction stays short.
_METER_BATCH = 200
# A 1.6 resend is looked for among each station's latest journal rows, for a
# whole batch in one statement (PostgreSQL; SQLite asks once per message).
_RESENT_IN_BATCH = text(
    """
    SELECT asked.position, latest.payload
    FROM unnest(CAST(:station_ids AS text[]), CAST(:message_ids AS text[]))
        WITH ORDINALITY AS asked(station_id, message_id, position)
    CROSS JOIN LATERAL (
        SELECT journal.message_id, journal.payload
        FROM transaction_messages AS journal
        WHERE journal.station_id = asked.station_id
          AND journal.action = 'MeterValues'
        ORDER BY journal.id DESC
        LIMIT :lookback
    ) AS latest
    WHERE latest.message_id = asked.message_id
    """
).columns(position=Integer, payload=JSON)
# The records of a batch's transactions, locked in id order: two batches (two
# gateway processes) never wait on each other in opposite orders.
_FIND_TRANSACTIONS = (
    select(ChargeDetailRecord, TransactionKey.station_id, TransactionKey.transaction_id)
    .join(TransactionKey, TransactionKey.record_id == ChargeDetailRecord.id)
    .where(
        tuple_(TransactionKey.station_id, TransactionKey.transaction_id).in_(
            bindparam("keys", expanding=True)
        )
    )
    .order_by(ChargeDetailRecord.id)
    .with_for_update(of=ChargeDetailRecord)
)


@dataclass(slots=True)
class _MeterMessage:
    station_id: str
    transaction_id: int | None
    reading: EnergyReading | None
    flags: list[str]
    received: Received

    @property
    def key(self) -> str | None:
        if self.transaction_id is None:
            return None
        return _transaction_key_16(self.transaction_id)


async def _commit_meter_values(
    sessionmaker: async_sessionmaker[AsyncSession], batch: list[_MeterMessage]
) -> list[ChargeDetailRecord | None]:
    """Write a batch of 1.6 MeterValues in one transaction: the resends found
    and the records found and locked in one statement each, the readings
    applied in arrival order, the journal rows inserted in one statement.
    Each message's outcome is the record it moved (None: journaled only)."""
    async with sessionmaker() as session:
        resent = await _resent_16(session, batch)
        keys = sorted(
            {
                (message.station_id, message.key)
                for message, again in zip(batch, resent, strict=True)
                if message.key is not None and not again
            }
        )
        records: dict[tuple[str, str], ChargeDetailRecord] = {}
        if keys:
            found = await session.execute(_FIND_TRANSACTIONS, {"keys": keys})
            for locked, station_id, transaction_id in found:
                records[(station_id, transaction_id)] = locked
        rows: list[dict[str, Any]] = []
        outcomes: list[ChargeDetailRecord | None] = []
        for message, again in zip(batch, resent, strict=True):
            record: ChargeDetailRecord | None = None
            flags = list(message.flags)
            if not again and message.key is not None:
                record = records.get((message.station_id, message.key))
                if record is None:
                    # Kept in the journal only: without its start there is
                    # no record a reading could move.
                    flags.append("unknown_transaction")
                    logger.warning(
                        "charging.meter.unknown_transaction",
                        station_id=message.station_id,
                        transaction_id=message.transaction_id,
                    )
            if record is not None and message.reading is not None:
                _apply_reading(
                    record,
                    message.reading,
                    received_at=message.received.received_at,
                )
            rows.append(
                entry(
                    message.received,
                    station_id=message.station_id,
                    action="MeterValues",
                    transaction_id=message.key,
                    record_id=None if record is None else record.id,
                    message_time=None
                    if message.reading is None
                    else message.reading.timestamp,
                    duplicate=again,
                    flags=flags,
                )
            )
            outcomes.append(record)
        await write_entries(session, rows)
        crash_point("before_commit", "MeterValues")
        await session.commit()
        crash_point("after_commit", "MeterValues")
    return outcomes


async def _resent_16(session: AsyncSession, batch: list[_MeterMessage]) -> list[bool]:
    """Which messages of the batch are resends: of a message in the journal
    (1.6 gives a MeterValues no business key: the same message id with the
    same payload among the station's latest rows), or of an earlier one in
    the batch.

    TODO: a resend after more than _RESEND_LOOKBACK newer messages of the
    station is journaled again (the record is unaffected).
    """
    if _in_one_statement(session, len(batch)):
        found = await session.execute(
            _RESENT_IN_BATCH,
            {
                "station_ids": [message.station_id for message in batch],
                "message_ids": [
                    storable_text(message.received.message_id) for message in batch
                ],
                "lookback": _RESEND_LOOKBACK,
            },
        )
        resent = [False] * len(batch)
        for row in found:
            index = int(row.position) - 1
            if row.payload == batch[index].received.payload:
                resent[index] = True
    else:
        resent = [
            await _is_resent_16(
                session, message.station_id, "MeterValues", message.received
            )
            for message in batch
        ]
    # Within the batch: a station resending while its first try is still
    # queued here (after a reconnect).
    earlier: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index, message in enumerate(batch):
        payloads = earlier.setdefault(
            (message.station_id, message.received.message_id), []
        )
        if message.received.payload in payloads:
            resent[index] = True
        payloads.append(message.received.payload)
    return resent


# -- 2.0.1 Updated events, group-committed ---------------------------------------


@dataclass(frozen=True, slots=True)
class _UpdatedEvent:
    """A 2.0.1 TransactionEvent Updated without an idToken."""

    station_id: str
    transaction_id: str
    seq_no: int
    timestamp: datetime
    reading: EnergyReading | None
    time_flags: list[str]
    received: Received


def _updated_event(
    station_id: str, payload: dict[str, Any], received: Received
) -> _UpdatedEvent:
    timestamp = parse_timestamp(payload["timestamp"])
    return _UpdatedEvent(
        station_id=station_id,
        transaction_id=storable_text(payload["transactionInfo"]["transactionId"]),
        seq_no=int(payload["seqNo"]),
        timestamp=timestamp,
        reading=latest_energy(payload.get("meterValue") or []),
        time_flags=_time_flags(timestamp, received),
        received=received,
    )


@dataclass(frozen=True, slots=True)
class _EventOutcome:
    record: ChargeDetailRecord
    # A retry of an event applied before: journaled, not applied again.
    duplicate: bool


# What the journal holds of a batch's transactions: how many sequence numbers
# and the highest, per transaction; and which of the batch's numbers it has.
_SEQUENCES_SO_FAR = (
    select(
        TransactionMessage.station_id,
        TransactionMessage.transaction_id,
        func.count(distinct(TransactionMessage.seq_no)),
        func.max(TransactionMessage.seq_no),
    )
    .where(
        TransactionMessage.received_at >= bindparam("floor"),
        tuple_(TransactionMessage.station_id, TransactionMessage.transaction_id).in_(
            bindparam("keys", expanding=True)
        ),
        TransactionMessage.duplicate.is_(False),
    )
    .group_by(TransactionMessage.station_id, TransactionMessage.transaction_id)
)
_SEQUENCE_NUMBERS_SEEN = select(
    TransactionMessage.station_id,
    TransactionMessage.transaction_id,
    TransactionMessage.seq_no,
).where(
    TransactionMessage.received_at >= bindparam("floor"),
    tuple_(
        TransactionMessage.station_id,
        TransactionMessage.transaction_id,
        TransactionMessage.seq_no,
    ).in_(bindparam("numbers", expanding=True)),
    TransactionMessage.duplicate.is_(False),
)


def _in_one_statement(session: AsyncSession, count: int) -> bool:
    """Whether a batch's lookups of ``count`` items run as one statement: on
    PostgreSQL, for more than one. SQLite does not search its indexes by a
    list of row values, and serialises writers anyway."""
    return count > 1 and session.get_bind().dialect.name == "postgresql"


async def _find_transactions(
    session: AsyncSession, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], ChargeDetailRecord]:
    """The records of these (station, transaction id) keys, locked in id order.

    One statement for many keys, or one per key (``_in_one_statement``).
    """
    records: dict[tuple[str, str], ChargeDetailRecord] = {}
    if _in_one_statement(session, len(keys)):
        for locked, station_id, transaction_id in await session.execute(
            _FIND_TRANSACTIONS, {"keys": keys}
        ):
            records[(station_id, transaction_id)] = locked
        return records
    for station_id, transaction_id in keys:
        record = await _find_transaction(session, station_id, transaction_id)
        if record is not None:
            records[(station_id, transaction_id)] = record
    return records


async def _sequences_so_far(
    session: AsyncSession,
    records: dict[tuple[str, str], ChargeDetailRecord],
    events: list[_UpdatedEvent],
) -> tuple[dict[tuple[str, str], _Sequence], set[tuple[str, str, int]]]:
    """What the journal holds of these events' transactions (their records
    locked): the sequence so far of each, and which (station, transaction,
    seqNo) it has applied already. Two statements for the batch, or one per
    event (``_in_one_statement``)."""
    sequences: dict[tuple[str, str], _Sequence] = {}
    seen: set[tuple[str, str, int]] = set()
    if _in_one_statement(session, len(events)):
        floor = min(_journal_floor(record) for record in records.values())
        for station_id, transaction_id, count, highest in await session.execute(
            _SEQUENCES_SO_FAR, {"floor": floor, "keys": sorted(records)}
        ):
            # Matched by key: neither is NULL.
            sequences[(station_id, str(transaction_id))] = _Sequence(
                seen=False, numbers_seen=int(count), highest=highest
            )
        numbers = sorted(
            {(event.station_id, event.transaction_id, event.seq_no) for event in events}
        )
        for station_id, transaction_id, seq_no in await session.execute(
            _SEQUENCE_NUMBERS_SEEN, {"floor": floor, "numbers": numbers}
        ):
            seen.add((station_id, str(transaction_id), int(seq_no or 0)))
        return sequences, seen
    for event in events:
        key = (event.station_id, event.transaction_id)
        sequence = await _sequence_so_far(
            session, records[key], event.station_id, event.transaction_id, event.seq_no
        )
        sequences.setdefault(
            key, _Sequence(False, sequence.numbers_seen, sequence.highest)
        )
        if sequence.seen:
            seen.add((*key, event.seq_no))
    return sequences, seen


async def _commit_updated_events(
    sessionmaker: async_sessionmaker[AsyncSession], batch: list[_UpdatedEvent]
) -> list[_EventOutcome | None]:
    """Write a batch of 2.0.1 Updated events in one transaction, as
    ``_apply_transaction_event`` writes one: the records found and locked, the
    journal's sequence numbers read, in one statement each for the batch.

    An event whose transaction has no record yet comes back None, unwritten;
    so does the whole batch when a copy of one of its events was committed at
    the same time (SQLite's unique journal index): each then takes the path
    of its own transaction, which looks again.
    """
    try:
        async with sessionmaker() as session:
            return await _write_updated_events(session, batch)
    except IntegrityError:
        return [None] * len(batch)


async def _write_updated_events(
    session: AsyncSession, batch: list[_UpdatedEvent]
) -> list[_EventOutcome | None]:
    keys = sorted({(event.station_id, event.transaction_id) for event in batch})
    records = await _find_transactions(session, keys)
    known = [
        event for event in batch if (event.station_id, event.transaction_id) in records
    ]
    if not known:
        return [None] * len(batch)
    sequences, seen = await _sequences_so_far(session, records, known)
    rows: list[dict[str, Any]] = []
    outcomes: list[_EventOutcome | None] = []
    released: set[str] = set()
    for event in batch:
        key = (event.station_id, event.transaction_id)
        record = records.get(key)
        if record is None:
            outcomes.append(None)
            continue
        duplicate = (*key, event.seq_no) in seen
        if not duplicate:
            seen.add((*key, event.seq_no))
            _add_flags(record, *event.time_flags)
            if event.reading is not None:
                _apply_event_reading(
                    record, event.reading, received_at=event.received.received_at
                )
            if record.state not in ACTIVE_STATES:
                released.add(record.id)
            sequence = sequences.get(key, _Sequence(False, 0, None))
            sequences[key] = _Sequence(
                seen=False,
                numbers_seen=sequence.numbers_seen,
                highest=sequence.highest,
            ).with_number(event.seq_no)
            _flag_sequence_gap(record, sequences[key])
        rows.append(
            entry(
                event.received,
                station_id=event.station_id,
                action="TransactionEvent",
                transaction_id=event.transaction_id,
                record_id=record.id,
                message_time=event.timestamp,
                seq_no=event.seq_no,
                event_type="Updated",
                duplicate=duplicate,
                flags=event.time_flags,
            )
        )
        outcomes.append(_EventOutcome(record, duplicate=duplicate))
    if released:
        await session.execute(_RELEASE_RECORDS, {"record_ids": sorted(released)})
    await write_entries(session, rows)
    crash_point("before_commit", "TransactionEvent")
    await session.commit()
    crash_point("after_commit", "TransactionEvent")
    return outcomes


async def request_stop(
    commands: StationCommands, record: ChargeDetailRecord, *, timeout: float
) -> None:
    """Ask the station holding ``record``'s transaction to stop it (1.6
    RemoteStopTransaction, 2.0.1 RequestStopTransaction); raises a domain error
    a person can read when it cannot or will not."""
    if record.state != CdrState.STARTED.value or record.transaction_id is None:
        raise SessionNotStoppable(
            "Only a charge that has started can be stopped; "
            f"this one is {record.state}."
        )
    version = commands.version_of(record.station_id)
    if version is None:
        raise StationUnavailable(record.station_id)
    if version is OcppVersion.V16:
        action = "RemoteStopTransaction"
        payload: dict[str, Any] = {"transactionId": int(record.transaction_id)}
    else:
        action = "RequestStopTransaction"
        payload = {"transactionId": record.transaction_id}
    try:
        answer = await commands.call(
            record.station_id, action, payload, timeout=timeout
        )
    except StationNotConnected as exc:
        raise StationUnavailable(record.station_id) from exc
    except (CallTimeout, CallFailed) as exc:
        raise SessionNotStoppable(
            "The station did not accept the stop request; try again."
        ) from exc
    if answer.get("status") != "Accepted":
        raise SessionNotStoppable("The station refused to stop the charge.")


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


async def _claim_connector(session: AsyncSession, record: ChargeDetailRecord) -> None:
    """Make ``record`` the charge in progress on its connector.

    Raises IntegrityError (now or at commit) while another active record holds
    the connector: of two starts racing for it, one wins. A row left by a
    record that is no longer active, or no longer there, is replaced.
    """
    connector = {
        "station_id": record.station_id,
        "evse_id": record.evse_id,
        "connector_id": record.connector_id,
    }
    holder = await session.scalar(_CONNECTOR_HOLDER, connector)
    if holder is not None:
        holder_state = await session.scalar(_RECORD_STATE, {"record_id": holder})
        if holder_state not in ACTIVE_STATES:
            await session.execute(
                _RELEASE_CONNECTOR, {**connector, "record_id": holder}
            )
    await session.execute(_CLAIM_CONNECTOR, {**connector, "record_id": record.id})


async def release_connectors(session: AsyncSession, *record_ids: str) -> None:
    """Free the connectors these records held, in the session's transaction:
    call it wherever a record leaves Pending or Started."""
    if record_ids:
        await session.execute(_RELEASE_RECORDS, {"record_ids": list(record_ids)})


def _hold_transaction_id(
    session: AsyncSession,
    record: ChargeDetailRecord,
    station_id: str,
    transaction_id: str,
) -> None:
    """Give ``record`` the station's transaction id; a second record taking the
    same one fails at commit with IntegrityError (``transaction_keys``)."""
    record.transaction_id = transaction_id
    session.add(
        TransactionKey(
            station_id=station_id, transaction_id=transaction_id, record_id=record.id
        )
    )


# Always scoped to the sending station: one station can never touch another's
# transaction. The key gives the record's id, which finds its partition; one
# statement, the record locked. Built once, like the other statements a
# transaction message runs (~130 µs saved each, bench_messages).
_FIND_TRANSACTION = (
    select(ChargeDetailRecord)
    .join(TransactionKey, TransactionKey.record_id == ChargeDetailRecord.id)
    .where(
        TransactionKey.station_id == bindparam("station_id"),
        TransactionKey.transaction_id == bindparam("transaction_id"),
    )
    .with_for_update(of=ChargeDetailRecord)
)


async def _find_transaction(
    session: AsyncSession, station_id: str, transaction_id: str
) -> ChargeDetailRecord | None:
    return await session.scalar(
        _FIND_TRANSACTION,
        {"station_id": station_id, "transaction_id": transaction_id},
    )


def _mark_started(
    record: ChargeDetailRecord, *, started_at: datetime, now: datetime
) -> None:
    record.state = CdrState.STARTED.value
    record.started_at = started_at
    record.failure_reason = None
    record.updated_at = now


async def _free_transaction_id_16(session: AsyncSession, station_id: str) -> int:
    """A random 1.6 transaction id this station has not used yet.

    Checked before use rather than by a failed commit: a rollback would also
    undo the rest of the message's transaction. Two starts racing for the same
    random id (one chance in 2**31) still meet in ``transaction_keys``.
    """
    for _ in range(_TRANSACTION_ID_ATTEMPTS):
        candidate = new_transaction_id_16()
        taken = await session.scalar(
            _TRANSACTION_KEY_OWNER,
            {"station_id": station_id, "transaction_id": str(candidate)},
        )
        if taken is None:
            return candidate
    raise RuntimeError("no free transaction id after several attempts")


@dataclass(frozen=True, slots=True)
class _Sequence:
    """What the journal holds of one 2.0.1 transaction's sequence numbers."""

    # Whether the event at hand was applied already.
    seen: bool
    numbers_seen: int
    highest: int | None

    def with_number(self, seq_no: int) -> _Sequence:
        """The same once the event at hand is journaled."""
        return _Sequence(
            seen=True,
            numbers_seen=self.numbers_seen + (0 if self.seen else 1),
            highest=seq_no if self.highest is None else max(self.highest, seq_no),
        )


_SEQUENCE_SO_FAR = select(
    func.count(distinct(TransactionMessage.seq_no)),
    func.max(TransactionMessage.seq_no),
    func.max(case((TransactionMessage.seq_no == bindparam("seq_no"), 1), else_=0)),
).where(
    TransactionMessage.received_at >= bindparam("floor"),
    TransactionMessage.station_id == bindparam("station_id"),
    TransactionMessage.transaction_id == bindparam("transaction_id"),
    TransactionMessage.duplicate.is_(False),
)


async def _sequence_so_far(
    session: AsyncSession,
    record: ChargeDetailRecord,
    station_id: str,
    transaction_id: str,
    seq_no: int,
) -> _Sequence:
    """Whether this 2.0.1 event was applied already — its business key is
    (station, transactionId, seqNo), whatever its message id — and which
    sequence numbers its transaction has: one query.

    Asked with ``record`` locked: every message of the transaction is checked
    and journaled under that lock, so a copy arriving at the same time waits
    and then finds this one.
    """
    numbers_seen, highest, seen = (
        await session.execute(
            _SEQUENCE_SO_FAR,
            {
                "seq_no": seq_no,
                "floor": _journal_floor(record),
                "station_id": station_id,
                "transaction_id": transaction_id,
            },
        )
    ).one()
    return _Sequence(seen=bool(seen), numbers_seen=int(numbers_seen), highest=highest)


def _journal_floor(record: ChargeDetailRecord) -> datetime:
    """No journal row of ``record``'s transaction was received before this."""
    return record.created_at - _JOURNAL_LOOKBEHIND


def _flag_sequence_gap(record: ChargeDetailRecord, sequence: _Sequence) -> None:
    """Flag the record ``sequence_gap`` while the journal lacks some of the
    sequence numbers 0..highest of its transaction; unflag it once filled."""
    if has_sequence_gap(numbers_seen=sequence.numbers_seen, highest=sequence.highest):
        _add_flags(record, "sequence_gap")
    else:
        _remove_flags(record, "sequence_gap")


def _transaction_key_16(transaction_id: int) -> str:
    # 1.6 ids are ours and small; one a station made up is cut to the column.
    return str(transaction_id)[:36]


def _storable_connector(value: int) -> int:
    # An id no column holds is kept in the journal only; 0 stands for unknown.
    return value if 0 <= value <= MAX_CONNECTOR_ID else 0


def _stop_sample(
    record: ChargeDetailRecord, timestamp: datetime, received: Received
) -> Sample | None:
    """The last sample of a 1.6 charge: its meterStop, at its stop time."""
    if record.meter_stop_wh is None:
        return None
    if not is_plausible_time(timestamp, received_at=received.received_at):
        timestamp = received.received_at
    return Sample(
        record_id=record.id,
        sampled_at=timestamp,
        meter_wh=record.meter_stop_wh,
        power_w=None,
        soc_percent=None,
    )


def _time_flags(moment: datetime, received: Received) -> list[str]:
    if is_plausible_time(moment, received_at=received.received_at):
        return []
    return ["implausible_time"]


def _add_flags(record: ChargeDetailRecord, *flags: str) -> None:
    # Assigned only when one is new (most calls add none): an assignment makes
    # the record's UPDATE write the JSON column again. A new list, so that the
    # change is seen.
    current = record.flags
    added = [flag for flag in dict.fromkeys(flags) if flag not in current]
    if added:
        record.flags = [*current, *added]


def _remove_flags(record: ChargeDetailRecord, *flags: str) -> None:
    current = record.flags
    if any(flag in current for flag in flags):
        record.flags = [flag for flag in current if flag not in flags]


def _awaits_stop(record: ChargeDetailRecord) -> bool:
    """Whether a stop would still change the record: it is running, or it was
    closed without the station's stop (offline, or superseded on its connector)."""
    if record.state != CdrState.FINISHED.value:
        return True
    return bool(_STOP_MISSING_FLAGS & set(record.flags))


def _apply_reading(
    record: ChargeDetailRecord, reading: EnergyReading, *, received_at: datetime
) -> None:
    # A finished charge's meter is its stop meter: a reading delivered after the
    # stop (queued while offline, retried) changes nothing.
    if not _awaits_stop(record) or record.state == CdrState.FAILED.value:
        return
    # A station clock that cannot be right orders nothing: the reading counts
    # as taken when it arrived.
    at = reading.timestamp
    if not is_plausible_time(at, received_at=received_at):
        at = received_at
    # Only a newer reading moves the meter: a late or repeated one counts nothing.
    if record.last_meter_at is not None and at < record.last_meter_at:
        return
    # A register never runs backwards; a newer but lower value is kept in the
    # journal and flagged here, and does not lower the energy.
    if record.meter_last_wh is not None and reading.wh < record.meter_last_wh:
        _add_flags(record, "meter_went_backwards")
        return
    record.meter_last_wh = reading.wh
    record.last_meter_at = at
    if record.meter_start_wh is not None:
        record.energy_wh = max(0, reading.wh - record.meter_start_wh)
    record.updated_at = received_at


def _apply_event_reading(
    record: ChargeDetailRecord, reading: EnergyReading, *, received_at: datetime
) -> None:
    """A 2.0.1 event's energy reading: the first one known is the start meter
    of a record that has none (its Started is late or lost)."""
    if not _awaits_stop(record):
        return
    if record.meter_start_wh is None:
        record.meter_start_wh = reading.wh
    _apply_reading(record, reading, received_at=received_at)


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
        floor = max(
            (m for m in (record.meter_start_wh, record.meter_last_wh) if m is not None),
            default=None,
        )
        if floor is not None and meter_stop < floor:
            _add_flags(record, "meter_went_backwards")
        record.meter_last_wh = meter_stop
        if record.meter_start_wh is not None:
            record.energy_wh = max(0, meter_stop - record.meter_start_wh)
    record.stopped_at = stopped_at
    record.stop_reason = reason
    record.updated_at = now
    # The station's own stop arrived: nothing of the charge is missing any
    # more but what the sequence numbers say (2.0.1).
    _remove_flags(record, *_STOP_MISSING_FLAGS, "incomplete")
