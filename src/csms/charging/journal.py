"""The append-only journal of transaction messages.

Every StartTransaction, MeterValues and StopTransaction (1.6) and every
TransactionEvent (2.0.1) a station sends is written here, in the same database
transaction as its effect on the Charge Detail Record, before it is
acknowledged. Records can be rebuilt and audited from it, and retries are
recognised in it by business key (2.0.1: station, transaction id, seqNo).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Index,
    Integer,
    String,
    Table,
    insert,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from csms.db.base import Base, UtcDateTime
from csms.ocpp.framing import OcppVersion

# A station clock before this is unset (often 1970 after a power loss); one
# ahead of ours by more than a day is wrong too. Both are stored, and flagged.
EARLIEST_PLAUSIBLE_TIME = datetime(2015, 1, 1, tzinfo=UTC)
LARGEST_PLAUSIBLE_LEAD = timedelta(days=1)
# What the record's columns hold: a value beyond is kept in the journal only.
MAX_METER_WH = 10**18
MAX_CONNECTOR_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Received:
    """A transaction message as it arrived, kept verbatim in the journal."""

    message_id: str
    version: OcppVersion
    payload: dict[str, Any]
    received_at: datetime


class TransactionMessage(Base):
    """One transaction message as received. On PostgreSQL the table is
    partitioned by month of ``received_at`` and its primary key there is
    (id, received_at); ``id`` alone, from one sequence, is still unique."""

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
        # Finds the 2.0.1 sequence numbers of a transaction. A message applied
        # twice is prevented by the record's row lock, under which every
        # message of a transaction is checked and journaled (see
        # docs/storage.md); SQLite, whose reads take no such lock and whose
        # journal is not partitioned, also keeps the unique index below.
        Index(
            "ix_transaction_messages_sequence",
            "station_id",
            "transaction_id",
            "seq_no",
            postgresql_where=text("seq_no IS NOT NULL"),
        ).ddl_if(dialect="postgresql"),
        Index(
            "uq_transaction_messages_sequence",
            "station_id",
            "transaction_id",
            "seq_no",
            unique=True,
            sqlite_where=text("NOT duplicate AND seq_no IS NOT NULL"),
        ).ddl_if(dialect="sqlite"),
        Index("ix_transaction_messages_record", "record_id", "id"),
        Index("ix_transaction_messages_station", "station_id", "id"),
    )


def is_plausible_time(moment: datetime, *, received_at: datetime) -> bool:
    """Whether a station's timestamp can be true, judged by when it arrived."""
    return EARLIEST_PLAUSIBLE_TIME <= moment <= received_at + LARGEST_PLAUSIBLE_LEAD


def storable_text(value: str) -> str:
    """``value`` with what PostgreSQL text cannot hold (NUL) replaced by U+FFFD."""
    return value.replace("\x00", "\ufffd")


def storable_meter(value: int | None) -> int | None:
    """A meter value the record can hold, or None for one no meter can show."""
    if value is None or abs(value) > MAX_METER_WH:
        return None
    return value


def has_sequence_gap(*, numbers_seen: int, highest: int | None) -> bool:
    """Whether 2.0.1 seqNo values 0..highest are not all there (E01..E15).

    ``numbers_seen`` counts the distinct sequence numbers received for one
    transaction, ``highest`` is the largest of them.
    """
    return highest is not None and numbers_seen < highest + 1


# Built once: a statement made per message costs ~130 µs of CPU to build and
# key for the compiled cache (bench_messages).
_INSERT_ENTRY = insert(cast(Table, TransactionMessage.__table__))


def entry(
    received: Received,
    *,
    station_id: str,
    action: str,
    transaction_id: str | None,
    record_id: str | None,
    message_time: datetime | None,
    seq_no: int | None = None,
    event_type: str | None = None,
    duplicate: bool = False,
    flags: list[str] | None = None,
) -> dict[str, Any]:
    """The journal row of one received transaction message, as insert values."""
    return {
        "station_id": station_id,
        "ocpp_version": received.version.value,
        "action": action,
        "message_id": storable_text(received.message_id),
        "transaction_id": None
        if transaction_id is None
        else storable_text(transaction_id),
        "seq_no": seq_no,
        "event_type": event_type,
        "record_id": record_id,
        "duplicate": duplicate,
        "message_time": message_time,
        "received_at": received.received_at,
        "payload": received.payload,
        "flags": list(flags or []),
    }


async def write_entries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Write journal rows (made by :func:`entry`) in the session's transaction,
    at once: a Core insert, no unit of work; many rows in one statement."""
    await session.execute(_INSERT_ENTRY, rows[0] if len(rows) == 1 else rows)
