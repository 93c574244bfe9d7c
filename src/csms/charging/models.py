"""Charge Detail Records: one per charge, from the request to the final meter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from csms.db.base import Base, UtcDateTime

# A connector has at most one charge in progress: the partial unique index
# below makes the database refuse a second one, whichever request races.
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
    # keyset walk over the primary key.
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
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    remote_start_id: Mapped[int | None] = mapped_column(Integer)
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
        UniqueConstraint("station_id", "transaction_id"),
        UniqueConstraint("customer_id", "idempotency_key"),
        Index(
            "uq_charge_detail_records_active_connector",
            "station_id",
            "evse_id",
            "connector_id",
            unique=True,
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
