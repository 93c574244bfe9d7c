"""The append-only journal of transaction messages.

Every StartTransaction, MeterValues and StopTransaction (1.6) and every
TransactionEvent (2.0.1) a station sends is written here, in the same database
transaction as its effect on the Charge Detail Record, before it is
acknowledged. Records can be rebuilt and audited from it, and retries are
recognised in it by business key (2.0.1: station, transaction id, seqNo).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from csms.db.base import Base, UtcDateTime


class TransactionMessage(Base):
    __tablename__ = "transaction_messages"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    station_id: Mapped[str] = mapped_column(String(48))
    ocpp_version: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(36))
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    seq_no: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str | None] = mapped_column(String(16))
    record_id: Mapped[str | None] = mapped_column(String(36))
    # A retry of a message already applied: kept for the audit, applied never.
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    message_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index(
            "uq_transaction_messages_sequence",
            "station_id",
            "transaction_id",
            "seq_no",
            unique=True,
            sqlite_where=text("NOT duplicate AND seq_no IS NOT NULL"),
            postgresql_where=text("NOT duplicate AND seq_no IS NOT NULL"),
        ),
        Index("ix_transaction_messages_record", "record_id", "id"),
        Index("ix_transaction_messages_station", "station_id", "id"),
    )
