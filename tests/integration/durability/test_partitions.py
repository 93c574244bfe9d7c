"""Month partitions on PostgreSQL, and retention on both databases: records
land in their month, the maintainer makes months ahead once and drops only
what is past its retention, and nothing is lost to a missing partition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.app import Csms
from csms.charging.ids import new_record_id
from csms.charging.journal import TransactionMessage
from csms.charging.models import ChargeDetailRecord, MeterSample
from csms.cluster import Role
from csms.db.engine import create_sessionmaker
from csms.db.partitions import (
    ADVISORY_LOCK_KEY,
    JOURNAL,
    RECORDS,
    SAMPLES,
    PartitionMaintainer,
    retention_from_settings,
)
from csms.settings import Settings
from csms.stations.models import Station

from conftest import RegisteredStation
from support.clock import ManualClock
from support.databases import PostgresTemplate, SqliteTemplate, own_database
from support.frames import boot, raw_station, send_call
from support.polling import eventually
from support.stations import V201
from support.transactions import transaction_event

RETENTION = retention_from_settings(
    record_retention=timedelta(0),
    journal_retention=timedelta(days=400),
    meter_sample_retention=timedelta(days=90),
)


@pytest.fixture
async def scratch_engine(
    database_backend: SqliteTemplate | PostgresTemplate, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """A migrated database of the test's own: partitions made or dropped here
    touch no other test."""
    async with own_database(database_backend, tmp_path) as engine:
        yield engine


def _require_postgres(engine_or_url: AsyncEngine | str) -> None:
    name = (
        engine_or_url if isinstance(engine_or_url, str) else engine_or_url.dialect.name
    )
    if "postgresql" not in name:
        pytest.skip("partitions exist on PostgreSQL only")


async def _partitions(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.scalars(
            text(
                "SELECT child.relname FROM pg_inherits "
                "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
                "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
                "WHERE parent.relname = :table"
            ),
            {"table": table},
        )
        return set(names)


async def _add_journal_row(engine: AsyncEngine, received_at: datetime) -> None:
    async with create_sessionmaker(engine)() as session:
        session.add(
            TransactionMessage(
                station_id="CP-1",
                ocpp_version="2.0.1",
                action="TransactionEvent",
                message_id="m-1",
                duplicate=False,
                received_at=received_at,
                payload={},
                flags=[],
            )
        )
        await session.commit()


async def _journal_times(engine: AsyncEngine) -> list[datetime]:
    async with create_sessionmaker(engine)() as session:
        return list(
            await session.scalars(
                select(TransactionMessage.received_at).order_by(
                    TransactionMessage.received_at
                )
            )
        )


# -- PostgreSQL: where rows live -------------------------------------------------


async def test_the_big_tables_are_partitioned_by_month_on_postgresql(
    scratch_engine: AsyncEngine,
) -> None:
    _require_postgres(scratch_engine)

    async with scratch_engine.connect() as connection:
        partitioned = set(
            await connection.scalars(
                text(
                    "SELECT relname FROM pg_partitioned_table "
                    "JOIN pg_class ON pg_class.oid = partrelid"
                )
            )
        )

    assert {RECORDS, JOURNAL, SAMPLES} <= partitioned
    this_month = f"{datetime.now(UTC):%Y_%m}"
    for table in (RECORDS, JOURNAL, SAMPLES):
        assert {f"{table}_{this_month}", f"{table}_default"} <= await _partitions(
            scratch_engine, table
        )


async def test_a_charge_lands_in_the_partitions_of_its_month(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    clock: ManualClock,
    database_url: str,
) -> None:
    _require_postgres(database_url)
    now = clock.now()

    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        for seq_no, event_type in enumerate(("Started", "Updated", "Ended")):
            await send_call(
                socket,
                "TransactionEvent",
                transaction_event(event_type, seq_no, at=now, wh=1000 + seq_no),
            )

    async with csms.engine.connect() as connection:
        record_partitions = set(
            await connection.scalars(
                text("SELECT tableoid::regclass::text FROM charge_detail_records")
            )
        )
        journal_partitions = set(
            await connection.scalars(
                text("SELECT tableoid::regclass::text FROM transaction_messages")
            )
        )
    assert record_partitions == {f"{RECORDS}_{now:%Y_%m}"}
    assert journal_partitions == {f"{JOURNAL}_{now:%Y_%m}"}


async def test_a_record_looked_up_by_id_is_read_from_one_partition(
    csms: Csms, ocpp_url: str, station: RegisteredStation, clock: ManualClock
) -> None:
    _require_postgres(csms.engine)
    now = clock.now()
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=V201
    ) as socket:
        await boot(socket, V201)
        await send_call(
            socket, "TransactionEvent", transaction_event("Started", 0, at=now, wh=1)
        )

    async with csms.engine.connect() as connection:
        record_id = await connection.scalar(
            text("SELECT id FROM charge_detail_records")
        )
        plan = "\n".join(
            await connection.scalars(
                text("EXPLAIN SELECT * FROM charge_detail_records WHERE id = :id"),
                {"id": record_id},
            )
        )

    scans = [line for line in plan.splitlines() if f" on {RECORDS}_" in line]
    assert len(scans) == 1, plan
    assert f" on {RECORDS}_{now:%Y_%m} " in scans[0], plan


# -- PostgreSQL: the maintainer ------------------------------------------------------


async def test_the_maintainer_makes_this_month_and_those_ahead_once(
    scratch_engine: AsyncEngine,
) -> None:
    _require_postgres(scratch_engine)
    maintainer = PartitionMaintainer(
        scratch_engine, months_ahead=3, retention=RETENTION
    )
    now = datetime(2031, 5, 15, tzinfo=UTC)

    first = await maintainer.run_once(now)
    again = await maintainer.run_once(now)

    months = ("2031_05", "2031_06", "2031_07", "2031_08")
    for table in (RECORDS, JOURNAL, SAMPLES):
        assert {f"{table}_{month}" for month in months} <= set(first.created)
        assert {f"{table}_{month}" for month in months} <= await _partitions(
            scratch_engine, table
        )
    assert f"{JOURNAL}_2031_09" not in first.created
    assert again.created == []
    assert again.dropped == []


async def test_the_maintainer_drops_only_partitions_past_their_retention(
    scratch_engine: AsyncEngine,
) -> None:
    _require_postgres(scratch_engine)
    maintainer = PartitionMaintainer(
        scratch_engine, months_ahead=3, retention=RETENTION
    )
    early = await maintainer.run_once(datetime(2030, 1, 15, tzinfo=UTC))
    await _add_journal_row(scratch_engine, datetime(2030, 1, 20, tzinfo=UTC))
    migrated_month = f"{datetime.now(UTC):%Y_%m}"

    # 400 days of journal reach back to 2030-01-11: January 2030 still holds
    # rows within retention; 90 days of samples reach to November 2030.
    report = await maintainer.run_once(datetime(2031, 2, 15, tzinfo=UTC))

    journal = await _partitions(scratch_engine, JOURNAL)
    samples = await _partitions(scratch_engine, SAMPLES)
    records = await _partitions(scratch_engine, RECORDS)
    assert {f"{JOURNAL}_2030_{month:02}" for month in (1, 2, 3, 4)} <= journal
    assert f"{JOURNAL}_{migrated_month}" not in journal
    assert f"{JOURNAL}_{migrated_month}" in early.dropped
    assert not {f"{SAMPLES}_2030_{month:02}" for month in (1, 2, 3, 4)} & samples
    assert f"{SAMPLES}_2031_02" in samples
    # Records are kept for ever by default.
    assert f"{RECORDS}_{migrated_month}" in records
    assert f"{RECORDS}_2030_01" in records
    assert not any(
        name.startswith(RECORDS) for name in [*early.dropped, *report.dropped]
    )
    assert {f"{table}_default" for table in (RECORDS, JOURNAL, SAMPLES)} <= (
        records | journal | samples
    )
    assert await _journal_times(scratch_engine) == [datetime(2030, 1, 20, tzinfo=UTC)]


async def test_a_second_maintainer_at_the_same_time_does_nothing(
    scratch_engine: AsyncEngine,
) -> None:
    _require_postgres(scratch_engine)
    maintainer = PartitionMaintainer(
        scratch_engine, months_ahead=3, retention=RETENTION
    )

    async with scratch_engine.connect() as other_worker:
        await other_worker.execute(
            text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        )
        report = await maintainer.run_once(datetime(2031, 5, 15, tzinfo=UTC))

    assert report.created == []
    assert report.skipped == ["all: another worker maintains"]


async def test_rows_waiting_in_the_default_partition_move_into_their_month(
    scratch_engine: AsyncEngine,
) -> None:
    _require_postgres(scratch_engine)
    maintainer = PartitionMaintainer(
        scratch_engine, months_ahead=3, retention=RETENTION
    )
    # No partition for February 2033 yet: the write still succeeds.
    moment = datetime(2033, 2, 10, 8, 30, tzinfo=UTC)
    await _add_journal_row(scratch_engine, moment)

    report = await maintainer.run_once(datetime(2033, 1, 10, tzinfo=UTC))

    async with scratch_engine.connect() as connection:
        where = await connection.scalar(
            text("SELECT tableoid::regclass::text FROM transaction_messages")
        )
    assert report.moved_rows == 1
    assert where == f"{JOURNAL}_2033_02"
    assert report.rows_in_default[JOURNAL] == 0
    assert await _journal_times(scratch_engine) == [moment]


async def test_a_record_of_a_month_without_partition_moves_into_it(
    scratch_engine: AsyncEngine,
) -> None:
    _require_postgres(scratch_engine)
    made_at = datetime(2033, 2, 10, 8, 30, tzinfo=UTC)
    record_id = new_record_id(made_at)
    async with create_sessionmaker(scratch_engine)() as session:
        session.add(
            Station(
                id="CP-1",
                password_hash="x",
                created_at=made_at,
                updated_at=made_at,
            )
        )
        await session.flush()
        session.add(
            ChargeDetailRecord(
                id=record_id,
                state="Finished",
                station_id="CP-1",
                evse_id=1,
                connector_id=1,
                flags=[],
                created_at=made_at,
                updated_at=made_at,
            )
        )
        await session.commit()

    report = await PartitionMaintainer(
        scratch_engine, months_ahead=3, retention=RETENTION
    ).run_once(datetime(2033, 1, 10, tzinfo=UTC))

    async with scratch_engine.connect() as connection:
        where = await connection.scalar(
            text(
                "SELECT tableoid::regclass::text FROM charge_detail_records "
                "WHERE id = :id"
            ),
            {"id": record_id},
        )
    assert report.moved_rows == 1
    assert where == f"{RECORDS}_2033_02"


async def test_rows_of_a_month_past_retention_are_deleted_from_the_default(
    scratch_engine: AsyncEngine,
) -> None:
    _require_postgres(scratch_engine)
    maintainer = PartitionMaintainer(
        scratch_engine, months_ahead=3, retention=RETENTION
    )
    await _add_journal_row(scratch_engine, datetime(2020, 3, 1, tzinfo=UTC))

    report = await maintainer.run_once(datetime(2033, 1, 10, tzinfo=UTC))

    assert report.deleted_rows == 1
    assert f"{JOURNAL}_2020_03" not in report.created
    assert await _journal_times(scratch_engine) == []


# -- SQLite: retention without partitions ----------------------------------------------


async def test_sqlite_deletes_journal_rows_and_samples_past_their_retention(
    scratch_engine: AsyncEngine,
) -> None:
    if scratch_engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL drops whole partitions instead")
    now = datetime(2031, 5, 15, tzinfo=UTC)
    for age in (500, 10):
        await _add_journal_row(scratch_engine, now - timedelta(days=age))
    async with create_sessionmaker(scratch_engine)() as session:
        for age in (100, 1):
            session.add(
                MeterSample(record_id="r-1", sampled_at=now - timedelta(days=age))
            )
        await session.commit()

    report = await PartitionMaintainer(
        scratch_engine, months_ahead=3, retention=RETENTION
    ).run_once(now)

    async with create_sessionmaker(scratch_engine)() as session:
        samples = await session.scalar(select(func.count()).select_from(MeterSample))
    assert report.deleted_rows == 2
    assert await _journal_times(scratch_engine) == [now - timedelta(days=10)]
    assert samples == 1


async def test_a_worker_maintains_the_partitions_as_it_starts(
    scratch_engine: AsyncEngine, settings: Settings
) -> None:
    now = datetime(2031, 5, 15, tzinfo=UTC)
    await _add_journal_row(scratch_engine, now - timedelta(days=500))
    url = scratch_engine.url.render_as_string(hide_password=False)
    worker = Csms(
        settings.model_copy(update={"database_url": url}),
        clock=ManualClock(now),
        roles=[Role.WORKER],
    )

    await worker.start()
    try:

        async def maintained() -> bool:
            return await _journal_times(scratch_engine) == []

        # The old journal row goes at once, past its retention.
        await eventually(maintained, timeout=10)
        if scratch_engine.dialect.name == "postgresql":
            # Months made ahead from the worker's own clock.
            assert f"{RECORDS}_2031_08" in await _partitions(scratch_engine, RECORDS)
    finally:
        await worker.stop()


def test_retention_settings_of_zero_keep_for_ever() -> None:
    settings = Settings(record_retention=timedelta(0))

    retention = retention_from_settings(
        record_retention=settings.record_retention,
        journal_retention=settings.journal_retention,
        meter_sample_retention=settings.meter_sample_retention,
    )

    assert retention == {
        RECORDS: None,
        JOURNAL: timedelta(days=400),
        SAMPLES: timedelta(days=90),
    }
