"""Charge Detail Records: one per charge, from the request to the final meter.

On PostgreSQL ``charge_detail_records`` is partitioned by month (see
docs/storage.md), and a partitioned table cannot hold a unique constraint that
leaves out its partition key. What must be unique across all records is
therefore kept in three small tables beside it, written in the same database
transaction as the record, on SQLite and PostgreSQL alike:

- ``active_charges``: the charge in progress on a connector (at most one);
- ``transaction_keys``: the record of a station's transaction id;
- ``charge_idempotency_keys``: the record a customer's start request made.

Meter samples for charts live in ``meter_samples``, written in batches after the
acknowledgement (``csms.charging.samples``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from csms.db.base import Base, UtcDateTime

# The states in which a record holds its connector (see ``active_charges``).
ACTIVE_STATES_SQL = "state IN ('Pending', 'Started')"

# Flags saying that messages of a charge are known to be missing: its stop
# (``incomplete``, set when a charge is closed without one), some 2.0.1
# sequence numbers (``sequence_gap``), or its start (``unknown_transaction``).
INCOMPLETE_FLAGS = frozenset({"incomplete", "sequence_gap", "unknown_transaction"})
# Set when the station confirmed that nothing more of the charge is queued.
CONFIRMED_COMPLETE = "confirmed_complete"


class ChargeDetailRecord(Base):
    __tablename__ = "charge_detail_records"

    # Time-ordered ids (see csms.charging.ids): newest-first listing is a
    # keyset walk over the primary key, and on PostgreSQL the id alone names
    # the month partition a record lives in.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    evse_id: Mapped[int] = mapped_column(Integer)
    connector_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL")
    )
    car_id: Mapped[int | None] = mapped_column(
        ForeignKey("cars.id", ondelete="SET NULL")
    )
    id_token: Mapped[str | None] = mapped_column(String(36))
    # 1.6: an integer the CSMS assigns; 2.0.1: a string the station chooses.
    # Unique per station through ``transaction_keys``.
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    remote_start_id: Mapped[int | None] = mapped_column(Integer)
    # Unique per customer through ``charge_idempotency_keys``.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))

    meter_start_wh: Mapped[int | None] = mapped_column(BigInteger)
    meter_last_wh: Mapped[int | None] = mapped_column(BigInteger)
    meter_stop_wh: Mapped[int | None] = mapped_column(BigInteger)
    energy_wh: Mapped[int | None] = mapped_column(BigInteger)
    last_meter_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stop_reason: Mapped[str | None] = mapped_column(String(50))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        # Finds the few open records of a station or connector (reconciliation,
        # pending starts) without walking its history; not unique: the rule of
        # one charge per connector is held by ``active_charges``.
        Index(
            "ix_charge_detail_records_active",
            "station_id",
            "evse_id",
            "connector_id",
            sqlite_where=text(ACTIVE_STATES_SQL),
            postgresql_where=text(ACTIVE_STATES_SQL),
        ),
        Index("ix_charge_detail_records_customer_id", "customer_id", "id"),
        Index("ix_charge_detail_records_station_id", "station_id", "id"),
    )

    @property
    def complete(self) -> bool:
        """Finished with nothing known to be missing, or confirmed so by the
        station: a record that can be billed as it is."""
        if self.state != "Finished":
            return False
        flags = set(self.flags)
        return CONFIRMED_COMPLETE in flags or not INCOMPLETE_FLAGS & flags


class ActiveCharge(Base):
    """The one charge in progress (Pending or Started) on a connector.

    The row is written with the record that claims the connector and deleted
    when that record leaves the active states, so the table never holds more
    rows than charges in progress. Two starts racing for a connector meet on
    its primary key: one commits, the other gets an integrity error.
    """

    __tablename__ = "active_charges"

    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(String(36))

    # Released by record id, wherever a record leaves the active states.
    __table_args__ = (Index("ix_active_charges_record_id", "record_id"),)


class TransactionKey(Base):
    """Which record holds a station's transaction id: one row per record that
    has one, kept as long as the record. Transaction messages find their
    record through it with one primary-key lookup, whatever the month."""

    __tablename__ = "transaction_keys"

    # TODO: kept as long as the records (~190 GB a year at world scale) while a
    # key only matters as long as messages of its transaction can arrive; a
    # retention like the journal's would bound it (docs/storage.md).

    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(36))


class IdempotencyKey(Base):
    """The record a customer's start request with an ``Idempotency-Key`` made."""

    __tablename__ = "charge_idempotency_keys"

    # TODO: kept as long as the records, like transaction_keys; a client
    # retries within minutes, so a retention of days would do.

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(36))


class MeterSample(Base):
    """A downsampled meter reading of a charge, for charts and analysis.

    Not billing data (the record and the journal are): written in batches after
    the station was answered, at most one per charge per sampling interval, and
    dropped after ``CSMS_METER_SAMPLE_RETENTION``.
    """

    __tablename__ = "meter_samples"

    record_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    # The energy register (Energy.Active.Import.Register), not the energy
    # of the charge so far: the register is true whatever arrives later.
    meter_wh: Mapped[int | None] = mapped_column(BigInteger)
    power_w: Mapped[int | None] = mapped_column(Integer)
    soc_percent: Mapped[int | None] = mapped_column(SmallInteger)


def first_record_id_at(moment: datetime) -> str:
    """The smallest record id (UUIDv7) that can be made at ``moment`` or later.

    Every id made from then on compares greater or equal, as text, so that a
    range of ids is a range of time: the bounds of a month partition, or a
    floor that keeps a lookup to recent partitions.
    """
    milliseconds = int(moment.astimezone(UTC).timestamp() * 1000)
    prefix = f"{milliseconds & ((1 << 48) - 1):012x}"
    return f"{prefix[:8]}-{prefix[8:]}-0000-0000-000000000000"
