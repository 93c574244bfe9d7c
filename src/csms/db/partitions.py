"""Month partitions: made ahead of time, dropped once past their retention.

On PostgreSQL three tables are partitioned by month (docs/storage.md):

========================  ==================  ==========================
table                     partition key       retention (setting)
========================  ==================  ==========================
``charge_detail_records``  ``id`` (UUIDv7)      ``CSMS_RECORD_RETENTION``
``transaction_messages``   ``received_at``      ``CSMS_JOURNAL_RETENTION``
``meter_samples``          ``sampled_at``       ``CSMS_METER_SAMPLE_RETENTION``
========================  ==================  ==========================

:class:`PartitionMaintainer` runs on the worker's timer. Each run, on
PostgreSQL, it makes the partitions of this month and ``months_ahead`` after
it (``<table>_YYYY_MM``) when missing, and detaches and drops the partitions
whose every row is older than the table's retention. Every table also has a
``<table>_default`` partition, so that a write never fails because its month
is missing (the worker stopped for months, a station clock far off). Rows found
there are moved into their month's partition when it is made; rows of a month
already past its retention are deleted. On SQLite, which has no partitions,
each run deletes the rows past retention in bounded batches.

Each step is its own short transaction with a lock timeout: a step that cannot
get its lock is skipped and named in the report, and the next run tries again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import ColumnClause, delete, literal_column, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from csms.charging.journal import TransactionMessage
from csms.charging.models import (
    ActiveCharge,
    ChargeDetailRecord,
    IdempotencyKey,
    MeterSample,
    TransactionKey,
    first_record_id_at,
)

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.db")

RECORDS = "charge_detail_records"
JOURNAL = "transaction_messages"
SAMPLES = "meter_samples"

DEFAULT_RETENTION: dict[str, timedelta | None] = {
    RECORDS: None,
    JOURNAL: timedelta(days=400),
    SAMPLES: timedelta(days=90),
}
DEFAULT_MONTHS_AHEAD = 3
# Rows of months this far back found in a default partition stay there: such
# a time is a clock gone wrong, not data worth a partition.
MONTHS_BEHIND_LIMIT = 120
# A DDL step waits this long for its lock, then gives way to the writers.
LOCK_TIMEOUT = "5s"
# SQLite: rows deleted per transaction, and transactions per run.
DELETE_BATCH = 5_000
DELETE_BATCHES_PER_RUN = 200

# Held for a run, so that two workers never maintain at the same time.
ADVISORY_LOCK_KEY = 0x0C5A_0007
_PARTITION_NAME = re.compile(r"_(\d{4})_(\d{2})$")
_LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    key: str
    # The key's lower bound for a month, as a Python value and as SQL text.
    bound: Callable[[datetime], Any]
    # The month a key value belongs to; None for one that names no time.
    month_of: Callable[[Any], datetime | None]

    def partition(self, month: datetime) -> str:
        return f"{self.name}_{month:%Y_%m}"

    @property
    def default(self) -> str:
        return f"{self.name}_default"

    def literal(self, month: datetime) -> str:
        value = self.bound(month)
        if isinstance(value, datetime):
            return f"'{value.isoformat()}'"
        return f"'{value}'"


@dataclass
class MaintenanceReport:
    """What one run did; logged at INFO when it changed anything."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    # Rows moved out of a default partition into a month made for them.
    moved_rows: int = 0
    # Rows deleted: past retention (SQLite), or in a default partition.
    deleted_rows: int = 0
    # Steps that could not get their lock in time; tried again next run.
    skipped: list[str] = field(default_factory=list)
    # Rows still in each default partition (PostgreSQL): normally none.
    rows_in_default: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(
            self.created or self.dropped or self.moved_rows or self.deleted_rows
        )


class PartitionMaintainer:
    """Keeps the month partitions of the big tables ahead of time and within
    their retention; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        months_ahead: int = DEFAULT_MONTHS_AHEAD,
        retention: Mapping[str, timedelta | None] | None = None,
    ) -> None:
        if months_ahead < 1:
            raise ValueError("months_ahead must be at least 1")
        retention = dict(DEFAULT_RETENTION if retention is None else retention)
        unknown = set(retention) - set(_TABLES)
        if unknown:
            raise ValueError(f"no partitioned table named {sorted(unknown)}")
        self._engine = engine
        self._months_ahead = months_ahead
        self._retention = {name: retention.get(name) for name in _TABLES}

    async def run_once(self, now: datetime) -> MaintenanceReport:
        """One round of maintenance as of ``now`` (aware UTC)."""
        report = MaintenanceReport()
        if self._engine.dialect.name == "postgresql":
            async with self._engine.connect() as guard:
                if not await guard.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"),
                    {"key": ADVISORY_LOCK_KEY},
                ):
                    report.skipped.append("all: another worker maintains")
                    return report
                try:
                    for table in _TABLES.values():
                        await self._maintain_partitions(table, now, report)
                finally:
                    await guard.execute(
                        text("SELECT pg_advisory_unlock(:key)"),
                        {"key": ADVISORY_LOCK_KEY},
                    )
        else:
            for table in _TABLES.values():
                await self._delete_expired_rows(table, now, report)
        if report.changed or report.skipped:
            logger.info(
                "db.partitions.maintained",
                created=report.created,
                dropped=report.dropped,
                moved_rows=report.moved_rows,
                deleted_rows=report.deleted_rows,
                skipped=report.skipped,
            )
        return report

    # -- PostgreSQL -------------------------------------------------------------

    async def _maintain_partitions(
        self, table: _Table, now: datetime, report: MaintenanceReport
    ) -> None:
        cutoff = self._cutoff(table, now)
        existing = await self._partitions_of(table)

        # Past retention first: a row of the default that is expired goes, the
        # others get the month they belong to.
        if cutoff is not None:
            report.deleted_rows += await self._step(
                report,
                f"delete expired rows of {table.default}",
                lambda connection: _delete_from_default(connection, table, cutoff),
            )
        wanted = _months_from(_month_start(now), self._months_ahead + 1)
        wanted += await self._months_in_default(table, now)
        for month in sorted(set(wanted)):
            name = table.partition(month)
            if name in existing:
                continue
            if cutoff is not None and _next_month(month) <= cutoff:
                continue
            moved = await self._step(
                report,
                f"create {name}",
                partial(_create_partition, table=table, month=month),
            )
            if moved is not None:
                existing.add(name)
                report.created.append(name)
                report.moved_rows += moved

        if cutoff is not None:
            for name in sorted(existing):
                expiring = _month_of_partition(table, name)
                if expiring is None or _next_month(expiring) > cutoff:
                    continue
                dropped = await self._step(
                    report,
                    f"drop {name}",
                    partial(_drop_partition, table=table, name=name, month=expiring),
                )
                if dropped is not None:
                    report.dropped.append(name)

        async with self._engine.connect() as connection:
            report.rows_in_default[table.name] = int(
                await connection.scalar(
                    text(f"SELECT count(*) FROM {table.default}")  # noqa: S608
                )
                or 0
            )

    async def _step(
        self,
        report: MaintenanceReport,
        what: str,
        action: Callable[[AsyncConnection], Any],
    ) -> Any:
        """Run one step in its own transaction; None if its lock was busy."""
        try:
            async with self._engine.begin() as connection:
                await connection.execute(
                    text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                )
                return await action(connection)
        except DBAPIError as exc:
            if _sqlstate(exc) != _LOCK_NOT_AVAILABLE:
                raise
            report.skipped.append(what)
            logger.warning("db.partitions.lock_busy", step=what)
            return None

    async def _partitions_of(self, table: _Table) -> set[str]:
        async with self._engine.connect() as connection:
            names = await connection.scalars(
                text(
                    "SELECT child.relname FROM pg_inherits "
                    "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
                    "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
                    "WHERE parent.relname = :table"
                ),
                {"table": table.name},
            )
            return set(names)

    async def _months_in_default(self, table: _Table, now: datetime) -> list[datetime]:
        """The months of the rows a default partition holds, within reason."""
        async with self._engine.connect() as connection:
            first, last = (
                await connection.execute(
                    text(
                        f"SELECT min({table.key}), max({table.key}) "  # noqa: S608
                        f"FROM {table.default}"
                    )
                )
            ).one()
        oldest, newest = table.month_of(first), table.month_of(last)
        if oldest is None or newest is None:
            return []
        this_month = _month_start(now)
        earliest = _months_from(this_month, -MONTHS_BEHIND_LIMIT)[-1]
        latest = _months_from(this_month, self._months_ahead + 1)[-1]
        start, end = max(oldest, earliest), min(newest, latest)
        months: list[datetime] = []
        month = start
        while month <= end:
            months.append(month)
            month = _next_month(month)
        return months

    def _cutoff(self, table: _Table, now: datetime) -> datetime | None:
        retention = self._retention[table.name]
        if retention is None or retention <= timedelta(0):
            return None
        return now.astimezone(UTC) - retention

    # -- SQLite -----------------------------------------------------------------

    async def _delete_expired_rows(
        self, table: _Table, now: datetime, report: MaintenanceReport
    ) -> None:
        cutoff = self._cutoff(table, now)
        if cutoff is None:
            return
        for _ in range(DELETE_BATCHES_PER_RUN):
            async with self._engine.begin() as connection:
                deleted = await _delete_batch(connection, table, cutoff)
            report.deleted_rows += deleted
            if deleted < DELETE_BATCH:
                return
        # TODO: a backlog beyond DELETE_BATCHES_PER_RUN batches waits for the
        # next run; an embedded database that far behind grows meanwhile.


# -- the steps ------------------------------------------------------------------


async def _create_partition(
    connection: AsyncConnection, *, table: _Table, month: datetime
) -> int:
    """Make the month's partition; returns how many rows came from the default."""
    name = table.partition(month)
    bounds = f"FROM ({table.literal(month)}) TO ({table.literal(_next_month(month))})"
    waiting = await connection.scalar(
        text(
            f"SELECT count(*) FROM {table.default} "  # noqa: S608
            f"WHERE {table.key} >= :low AND {table.key} < :high"
        ),
        {"low": table.bound(month), "high": table.bound(_next_month(month))},
    )
    if not waiting:
        await connection.execute(
            text(f"CREATE TABLE {name} PARTITION OF {table.name} FOR VALUES {bounds}")
        )
        return 0

    # Rows of this month wait in the default: PostgreSQL refuses a partition
    # that the default already holds rows of. Move them in one transaction,
    # with the default locked so that no row of the month lands there meanwhile.
    await connection.execute(
        text(f"LOCK TABLE {table.default} IN ACCESS EXCLUSIVE MODE")
    )
    await connection.execute(
        text(f"CREATE TABLE {name} (LIKE {table.name} INCLUDING DEFAULTS)")
    )
    moved = await connection.execute(
        text(
            f"WITH moved AS (DELETE FROM {table.default} "  # noqa: S608
            f"WHERE {table.key} >= :low AND {table.key} < :high RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ),
        {"low": table.bound(month), "high": table.bound(_next_month(month))},
    )
    await connection.execute(
        text(f"ALTER TABLE {table.name} ATTACH PARTITION {name} FOR VALUES {bounds}")
    )
    return int(moved.rowcount)


async def _drop_partition(
    connection: AsyncConnection, *, table: _Table, name: str, month: datetime
) -> bool:
    await connection.execute(text(f"ALTER TABLE {table.name} DETACH PARTITION {name}"))
    await connection.execute(text(f"DROP TABLE {name}"))
    if table.name == RECORDS:
        # The keys of the records dropped with it: their ids are of that month.
        await _delete_record_keys(
            connection,
            low=first_record_id_at(month),
            high=first_record_id_at(_next_month(month)),
        )
    return True


async def _delete_from_default(
    connection: AsyncConnection, table: _Table, cutoff: datetime
) -> int:
    # Whole months only, as a partition drop would.
    floor = table.bound(_month_start(cutoff))
    deleted = await connection.execute(
        text(
            f"DELETE FROM {table.default} WHERE {table.key} < :floor"  # noqa: S608
        ),
        {"floor": floor},
    )
    return int(deleted.rowcount)


async def _delete_record_keys(
    connection: AsyncConnection, *, low: str, high: str
) -> None:
    """Delete the key rows of the records with ids in [low, high)."""
    # TODO: only active_charges has an index on record_id: this reads
    # transaction_keys and charge_idempotency_keys whole, once per month
    # dropped, and only when records have a retention at all.
    for model in (ActiveCharge, TransactionKey, IdempotencyKey):
        await connection.execute(
            delete(model).where(model.record_id >= low, model.record_id < high)
        )


async def _delete_batch(
    connection: AsyncConnection, table: _Table, cutoff: datetime
) -> int:
    """Delete up to DELETE_BATCH rows of ``table`` older than ``cutoff`` (SQLite)."""
    rowid: ColumnClause[int] = literal_column("rowid")
    if table.name == RECORDS:
        floor = first_record_id_at(cutoff)
        ids = (
            await connection.scalars(
                select(ChargeDetailRecord.id)
                .where(ChargeDetailRecord.id < floor)
                .limit(DELETE_BATCH)
            )
        ).all()
        if ids:
            await connection.execute(
                delete(ChargeDetailRecord).where(ChargeDetailRecord.id.in_(ids))
            )
            for key in (ActiveCharge, TransactionKey, IdempotencyKey):
                await connection.execute(delete(key).where(key.record_id.in_(ids)))
        return len(ids)
    rows: type[TransactionMessage] | type[MeterSample]
    if table.name == JOURNAL:
        rows, column = TransactionMessage, TransactionMessage.received_at
    else:
        rows, column = MeterSample, MeterSample.sampled_at
    doomed = select(rowid).select_from(rows).where(column < cutoff).limit(DELETE_BATCH)
    deleted = await connection.execute(delete(rows).where(rowid.in_(doomed)))
    return int(deleted.rowcount)


# -- months -----------------------------------------------------------------------


def _month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    if month.month == 12:
        return month.replace(year=month.year + 1, month=1)
    return month.replace(month=month.month + 1)


def _previous_month(month: datetime) -> datetime:
    if month.month == 1:
        return month.replace(year=month.year - 1, month=12)
    return month.replace(month=month.month - 1)


def _months_from(month: datetime, count: int) -> list[datetime]:
    """``count`` months from ``month`` on (backwards when negative)."""
    step = _next_month if count >= 0 else _previous_month
    months = [month]
    for _ in range(abs(count) - 1):
        months.append(step(months[-1]))
    return months


def _month_of_partition(table: _Table, name: str) -> datetime | None:
    match = _PARTITION_NAME.search(name)
    if match is None or name != table.partition(
        datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
    ):
        return None
    return datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)


def _month_of_time(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return _month_start(value)


def _month_of_record_id(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        milliseconds = int(value.replace("-", "")[:12], 16)
    except ValueError:
        return None
    return _month_start(datetime.fromtimestamp(milliseconds / 1000, tz=UTC))


def _sqlstate(error: DBAPIError) -> str | None:
    original = error.orig
    code = getattr(original, "sqlstate", None) or getattr(
        getattr(original, "__cause__", None), "sqlstate", None
    )
    return None if code is None else str(code)


_TABLES: dict[str, _Table] = {
    RECORDS: _Table(RECORDS, "id", first_record_id_at, _month_of_record_id),
    JOURNAL: _Table(JOURNAL, "received_at", lambda month: month, _month_of_time),
    SAMPLES: _Table(SAMPLES, "sampled_at", lambda month: month, _month_of_time),
}


def retention_from_settings(
    *,
    record_retention: timedelta,
    journal_retention: timedelta,
    meter_sample_retention: timedelta,
) -> dict[str, timedelta | None]:
    """The retention per table from the settings, where zero keeps for ever."""
    return {
        RECORDS: record_retention or None,
        JOURNAL: journal_retention or None,
        SAMPLES: meter_sample_retention or None,
    }
