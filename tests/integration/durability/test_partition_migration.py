"""The migration to partitioned records and key tables, on a database that
already holds records, and back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.charging.ids import new_record_id
from csms.db.base import UtcDateTime
from csms.db.migrate import build_alembic_config

from support.databases import PostgresTemplate, SqliteTemplate, own_database

BEFORE = "0004"
NOW = datetime.now(UTC)
# Two months back: on PostgreSQL its partition is made for it by the migration.
EARLIER = NOW - timedelta(days=62)

# The tables as they were before the migration, with the columns written here.
_metadata = sa.MetaData()
_stations = sa.Table(
    "stations",
    _metadata,
    sa.Column("id", sa.String),
    sa.Column("password_hash", sa.String),
    sa.Column("security_profile", sa.Integer),
    sa.Column("state", sa.String),
    sa.Column("online", sa.Boolean),
    sa.Column("created_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime),
)
_customers = sa.Table(
    "customers",
    _metadata,
    sa.Column("id", sa.Integer),
    sa.Column("email", sa.String),
    sa.Column("name", sa.String),
    sa.Column("password_hash", sa.String),
    sa.Column("active", sa.Boolean),
    sa.Column("created_at", UtcDateTime),
)
_records = sa.Table(
    "charge_detail_records",
    _metadata,
    sa.Column("id", sa.String),
    sa.Column("state", sa.String),
    sa.Column("station_id", sa.String),
    sa.Column("evse_id", sa.Integer),
    sa.Column("connector_id", sa.Integer),
    sa.Column("customer_id", sa.Integer),
    sa.Column("transaction_id", sa.String),
    sa.Column("idempotency_key", sa.String),
    sa.Column("flags", sa.JSON),
    sa.Column("created_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime),
)
_journal = sa.Table(
    "transaction_messages",
    _metadata,
    sa.Column("id", sa.BigInteger),
    sa.Column("station_id", sa.String),
    sa.Column("ocpp_version", sa.String),
    sa.Column("action", sa.String),
    sa.Column("message_id", sa.String),
    sa.Column("transaction_id", sa.String),
    sa.Column("seq_no", sa.BigInteger),
    sa.Column("duplicate", sa.Boolean),
    sa.Column("received_at", UtcDateTime),
    sa.Column("payload", sa.JSON),
    sa.Column("flags", sa.JSON),
)
FINISHED_ID = new_record_id(EARLIER)
STARTED_ID = new_record_id(NOW)


@pytest.fixture
async def engine(
    database_backend: SqliteTemplate | PostgresTemplate, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """A database of the test's own, migrated to head."""
    async with own_database(database_backend, tmp_path) as engine:
        yield engine


async def _migrate(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    def run(connection: Connection) -> None:
        config = build_alembic_config()
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def _fill(engine: AsyncEngine) -> None:
    """Records, journal rows and what they refer to, in the old schema."""
    async with engine.begin() as connection:
        await connection.execute(
            _stations.insert().values(
                id="CP-1",
                password_hash="x",
                security_profile=1,
                state="Charging",
                online=False,
                created_at=EARLIER,
                updated_at=EARLIER,
            )
        )
        await connection.execute(
            _customers.insert().values(
                id=1,
                email="ada@example.org",
                name="Ada",
                password_hash="x",
                active=True,
                created_at=EARLIER,
            )
        )
        record: dict[str, Any] = {
            "station_id": "CP-1",
            "evse_id": 1,
            "connector_id": 1,
            "customer_id": 1,
            "flags": [],
        }
        await connection.execute(
            _records.insert(),
            [
                {
                    **record,
                    "id": FINISHED_ID,
                    "state": "Finished",
                    "transaction_id": "TX-1",
                    "idempotency_key": "start-1",
                    "created_at": EARLIER,
                    "updated_at": EARLIER,
                },
                {
                    **record,
                    "id": STARTED_ID,
                    "state": "Started",
                    "transaction_id": "TX-2",
                    "idempotency_key": None,
                    "created_at": NOW,
                    "updated_at": NOW,
                },
            ],
        )
        await connection.execute(
            _journal.insert(),
            [
                {
                    "id": number,
                    "station_id": "CP-1",
                    "ocpp_version": "2.0.1",
                    "action": "TransactionEvent",
                    "message_id": f"m-{number}",
                    "transaction_id": "TX-1",
                    "seq_no": number,
                    "duplicate": False,
                    "received_at": at,
                    "payload": {},
                    "flags": [],
                }
                for number, at in ((1, EARLIER), (2, NOW))
            ],
        )
        if connection.dialect.name == "postgresql":
            await connection.execute(
                sa.text("SELECT setval('transaction_messages_id_seq', 2)")
            )


async def _rows(engine: AsyncEngine, query: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(sa.text(query))]


async def test_the_upgrade_keeps_every_row_and_fills_the_key_tables(
    engine: AsyncEngine,
) -> None:
    await _migrate(engine, BEFORE, down=True)
    await _fill(engine)

    await _migrate(engine, "head")

    assert await _rows(
        engine, "SELECT id, state FROM charge_detail_records ORDER BY id"
    ) == [(FINISHED_ID, "Finished"), (STARTED_ID, "Started")]
    assert await _rows(engine, "SELECT id FROM transaction_messages ORDER BY id") == [
        (1,),
        (2,),
    ]
    assert await _rows(engine, "SELECT record_id FROM active_charges") == [
        (STARTED_ID,)
    ]
    assert await _rows(
        engine,
        "SELECT transaction_id, record_id FROM transaction_keys "
        "ORDER BY transaction_id",
    ) == [("TX-1", FINISHED_ID), ("TX-2", STARTED_ID)]
    assert await _rows(
        engine, "SELECT idempotency_key, record_id FROM charge_idempotency_keys"
    ) == [("start-1", FINISHED_ID)]


async def test_on_postgresql_old_rows_land_in_the_partition_of_their_month(
    engine: AsyncEngine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("partitions exist on PostgreSQL only")
    await _migrate(engine, BEFORE, down=True)
    await _fill(engine)

    await _migrate(engine, "head")

    assert await _rows(
        engine,
        "SELECT id, tableoid::regclass::text FROM charge_detail_records ORDER BY id",
    ) == [
        (FINISHED_ID, f"charge_detail_records_{EARLIER:%Y_%m}"),
        (STARTED_ID, f"charge_detail_records_{NOW:%Y_%m}"),
    ]
    assert await _rows(
        engine,
        "SELECT id, tableoid::regclass::text FROM transaction_messages ORDER BY id",
    ) == [
        (1, f"transaction_messages_{EARLIER:%Y_%m}"),
        (2, f"transaction_messages_{NOW:%Y_%m}"),
    ]
    # The journal's ids go on from the same sequence.
    assert await _rows(engine, "SELECT nextval('transaction_messages_id_seq')") == [
        (3,)
    ]


async def test_the_downgrade_keeps_every_row_and_the_old_constraints(
    engine: AsyncEngine,
) -> None:
    await _migrate(engine, BEFORE, down=True)
    await _fill(engine)
    await _migrate(engine, "head")

    await _migrate(engine, BEFORE, down=True)

    assert await _rows(
        engine, "SELECT id, state FROM charge_detail_records ORDER BY id"
    ) == [(FINISHED_ID, "Finished"), (STARTED_ID, "Started")]
    assert len(await _rows(engine, "SELECT id FROM transaction_messages")) == 2
    # The unique constraint is back: a second record for TX-1 is refused.
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(
                _records.insert().values(
                    id=new_record_id(NOW),
                    state="Finished",
                    station_id="CP-1",
                    evse_id=2,
                    connector_id=2,
                    transaction_id="TX-1",
                    flags=[],
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
