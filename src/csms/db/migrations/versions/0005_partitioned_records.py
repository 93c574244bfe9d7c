"""Month partitions for records, journal and meter samples; key tables.

On PostgreSQL ``charge_detail_records`` becomes partitioned by range of its
time-ordered id, ``transaction_messages`` and the new ``meter_samples`` by range
of their time, one partition a month plus a default one. What must be unique
across all records moves to three small tables, on every database:
``active_charges``, ``transaction_keys`` and ``charge_idempotency_keys``. SQLite
keeps plain tables with the same columns. See docs/storage.md.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 20:00:00.000000
"""

# Statements here are built from this file's own table and column names only.
# ruff: noqa: S608

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_STATES_SQL = "state IN ('Pending', 'Started')"
SEQUENCE_SQL = "NOT duplicate AND seq_no IS NOT NULL"
# Partitions made ahead of the current month, so that a fresh database works
# before the worker first runs (it keeps CSMS_PARTITION_MONTHS_AHEAD ahead).
MONTHS_AHEAD = 3
# Existing rows older than this many months stay in the default partition
# rather than make a partition each (a clock set to 1970, say).
MONTHS_BEHIND_LIMIT = 120

RECORDS = "charge_detail_records"
JOURNAL = "transaction_messages"
SAMPLES = "meter_samples"


def upgrade() -> None:
    now = datetime.now(UTC)
    postgres = op.get_bind().dialect.name == "postgresql"
    _create_key_tables()
    _fill_key_tables()
    if postgres:
        _partition_records(now)
        _partition_journal(now)
    else:
        with op.batch_alter_table(RECORDS) as batch_op:
            batch_op.drop_constraint(
                "uq_charge_detail_records_station_id", type_="unique"
            )
            batch_op.drop_constraint(
                "uq_charge_detail_records_customer_id", type_="unique"
            )
            batch_op.drop_index(
                "uq_charge_detail_records_active_connector",
                sqlite_where=sa.text(ACTIVE_STATES_SQL),
            )
            batch_op.create_index(
                "ix_charge_detail_records_active",
                ["station_id", "evse_id", "connector_id"],
                sqlite_where=sa.text(ACTIVE_STATES_SQL),
            )
    _create_samples(now, postgres=postgres)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_table(SAMPLES)
    if postgres:
        _unpartition_journal()
        _unpartition_records()
    else:
        with op.batch_alter_table(RECORDS) as batch_op:
            batch_op.drop_index(
                "ix_charge_detail_records_active",
                sqlite_where=sa.text(ACTIVE_STATES_SQL),
            )
            batch_op.create_unique_constraint(
                "uq_charge_detail_records_station_id", ["station_id", "transaction_id"]
            )
            batch_op.create_unique_constraint(
                "uq_charge_detail_records_customer_id",
                ["customer_id", "idempotency_key"],
            )
            batch_op.create_index(
                "uq_charge_detail_records_active_connector",
                ["station_id", "evse_id", "connector_id"],
                unique=True,
                sqlite_where=sa.text(ACTIVE_STATES_SQL),
            )
    op.drop_table("charge_idempotency_keys")
    op.drop_table("transaction_keys")
    op.drop_index("ix_active_charges_record_id", table_name="active_charges")
    op.drop_table("active_charges")


# -- key tables ------------------------------------------------------------------


def _create_key_tables() -> None:
    op.create_table(
        "active_charges",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint(
            "station_id", "evse_id", "connector_id", name=op.f("pk_active_charges")
        ),
    )
    op.create_index("ix_active_charges_record_id", "active_charges", ["record_id"])
    op.create_table(
        "transaction_keys",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint(
            "station_id", "transaction_id", name=op.f("pk_transaction_keys")
        ),
    )
    op.create_table(
        "charge_idempotency_keys",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_charge_idempotency_keys_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "idempotency_key", name=op.f("pk_charge_idempotency_keys")
        ),
    )


def _fill_key_tables() -> None:
    # The unique constraints being replaced held these rows unique already.
    op.execute(
        "INSERT INTO active_charges (station_id, evse_id, connector_id, record_id) "
        f"SELECT station_id, evse_id, connector_id, id FROM {RECORDS} "
        f"WHERE {ACTIVE_STATES_SQL}"
    )
    op.execute(
        "INSERT INTO transaction_keys (station_id, transaction_id, record_id) "
        f"SELECT station_id, transaction_id, id FROM {RECORDS} "
        "WHERE transaction_id IS NOT NULL"
    )
    op.execute(
        "INSERT INTO charge_idempotency_keys "
        "(customer_id, idempotency_key, record_id) "
        f"SELECT customer_id, idempotency_key, id FROM {RECORDS} "
        "WHERE customer_id IS NOT NULL AND idempotency_key IS NOT NULL"
    )


# -- PostgreSQL: partitioned tables ----------------------------------------------


def _record_columns(*, id_collation: str | None) -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(length=36, collation=id_collation), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("car_id", sa.Integer(), nullable=True),
        sa.Column("id_token", sa.String(length=36), nullable=True),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("remote_start_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("meter_start_wh", sa.BigInteger(), nullable=True),
        sa.Column("meter_last_wh", sa.BigInteger(), nullable=True),
        sa.Column("meter_stop_wh", sa.BigInteger(), nullable=True),
        sa.Column("energy_wh", sa.BigInteger(), nullable=True),
        sa.Column("last_meter_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=50), nullable=True),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _record_foreign_keys() -> list[sa.ForeignKeyConstraint]:
    return [
        sa.ForeignKeyConstraint(
            ["car_id"],
            ["cars.id"],
            name=op.f("fk_charge_detail_records_car_id_cars"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_charge_detail_records_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
            name=op.f("fk_charge_detail_records_station_id_stations"),
        ),
    ]


def _journal_columns(*, id_default: sa.TextClause | None) -> list[sa.Column[object]]:
    return [
        sa.Column(
            "id",
            sa.BigInteger(),
            server_default=id_default,
            nullable=False,
            autoincrement=False,
        ),
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("ocpp_version", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("seq_no", sa.BigInteger(), nullable=True),
        sa.Column("event_type", sa.String(length=16), nullable=True),
        sa.Column("record_id", sa.String(length=36), nullable=True),
        sa.Column("duplicate", sa.Boolean(), nullable=False),
        sa.Column("message_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
    ]


# TODO: the existing rows are copied into the partitioned tables in one
# transaction, holding the tables locked meanwhile: seconds for the databases
# of today, hours for one already holding hundreds of millions of rows. Such a
# database needs the copy staged (backfill in batches, then a short swap).
def _partition_records(now: datetime) -> None:
    old = f"{RECORDS}_unpartitioned"
    op.rename_table(RECORDS, old)
    # Constraint and index names are unique per schema: free them first.
    for constraint in (
        "pk_charge_detail_records",
        "uq_charge_detail_records_station_id",
        "uq_charge_detail_records_customer_id",
        "fk_charge_detail_records_car_id_cars",
        "fk_charge_detail_records_customer_id_customers",
        "fk_charge_detail_records_station_id_stations",
    ):
        op.drop_constraint(constraint, old)
    for index in (
        "ix_charge_detail_records_customer_id",
        "ix_charge_detail_records_station_id",
        "uq_charge_detail_records_active_connector",
    ):
        op.drop_index(index, table_name=old)

    # Byte order ("C") on the id: ids compare as their time, and the
    # partition bounds hold whatever the database's collation.
    op.create_table(
        RECORDS,
        *_record_columns(id_collation="C"),
        *_record_foreign_keys(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_detail_records")),
        postgresql_partition_by="RANGE (id)",
    )
    _create_partitions(RECORDS, _months(now, _oldest_id_time(old)), _record_id_bound)
    columns = ", ".join(column.name for column in _record_columns(id_collation=None))
    op.execute(f"INSERT INTO {RECORDS} ({columns}) SELECT {columns} FROM {old}")
    op.drop_table(old)
    _create_record_indexes()


def _create_record_indexes() -> None:
    op.create_index(
        "ix_charge_detail_records_customer_id", RECORDS, ["customer_id", "id"]
    )
    op.create_index(
        "ix_charge_detail_records_station_id", RECORDS, ["station_id", "id"]
    )
    op.create_index(
        "ix_charge_detail_records_active",
        RECORDS,
        ["station_id", "evse_id", "connector_id"],
        postgresql_where=sa.text(ACTIVE_STATES_SQL),
    )


def _partition_journal(now: datetime) -> None:
    old = f"{JOURNAL}_unpartitioned"
    op.rename_table(JOURNAL, old)
    op.drop_constraint("pk_transaction_messages", old)
    for index in (
        "ix_transaction_messages_record",
        "ix_transaction_messages_station",
        "uq_transaction_messages_sequence",
    ):
        op.drop_index(index, table_name=old)
    # The ids go on from the same sequence, so they stay unique.
    op.execute(f"ALTER SEQUENCE {JOURNAL}_id_seq OWNED BY NONE")

    op.create_table(
        JOURNAL,
        *_journal_columns(id_default=sa.text(f"nextval('{JOURNAL}_id_seq')")),
        sa.PrimaryKeyConstraint(
            "id", "received_at", name=op.f("pk_transaction_messages")
        ),
        postgresql_partition_by="RANGE (received_at)",
    )
    op.execute(f"ALTER SEQUENCE {JOURNAL}_id_seq OWNED BY {JOURNAL}.id")
    oldest = op.get_bind().scalar(sa.text(f"SELECT min(received_at) FROM {old}"))
    _create_partitions(JOURNAL, _months(now, oldest), _time_bound)
    columns = ", ".join(column.name for column in _journal_columns(id_default=None))
    op.execute(f"INSERT INTO {JOURNAL} ({columns}) SELECT {columns} FROM {old}")
    op.drop_table(old)
    op.create_index("ix_transaction_messages_record", JOURNAL, ["record_id", "id"])
    op.create_index("ix_transaction_messages_station", JOURNAL, ["station_id", "id"])
    op.create_index(
        "ix_transaction_messages_sequence",
        JOURNAL,
        ["station_id", "transaction_id", "seq_no"],
        postgresql_where=sa.text("seq_no IS NOT NULL"),
    )


def _create_samples(now: datetime, *, postgres: bool) -> None:
    op.create_table(
        SAMPLES,
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("meter_wh", sa.BigInteger(), nullable=True),
        sa.Column("power_w", sa.Integer(), nullable=True),
        sa.Column("soc_percent", sa.SmallInteger(), nullable=True),
        sa.PrimaryKeyConstraint(
            "record_id", "sampled_at", name=op.f("pk_meter_samples")
        ),
        # Read by PostgreSQL only; SQLite makes a plain table.
        postgresql_partition_by="RANGE (sampled_at)",
    )
    if postgres:
        _create_partitions(SAMPLES, _months(now, None), _time_bound)


# -- PostgreSQL: back to plain tables --------------------------------------------


def _unpartition_records() -> None:
    partitioned = f"{RECORDS}_partitioned"
    op.rename_table(RECORDS, partitioned)
    # Dropping the partitioned table below drops its partitions, constraints
    # and indexes; their names must be free for the plain table first.
    for constraint in (
        "pk_charge_detail_records",
        "fk_charge_detail_records_car_id_cars",
        "fk_charge_detail_records_customer_id_customers",
        "fk_charge_detail_records_station_id_stations",
    ):
        op.drop_constraint(constraint, partitioned)
    for index in (
        "ix_charge_detail_records_customer_id",
        "ix_charge_detail_records_station_id",
        "ix_charge_detail_records_active",
    ):
        op.drop_index(index, table_name=partitioned)
    op.create_table(
        RECORDS,
        *_record_columns(id_collation=None),
        *_record_foreign_keys(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_detail_records")),
    )
    columns = ", ".join(column.name for column in _record_columns(id_collation=None))
    op.execute(f"INSERT INTO {RECORDS} ({columns}) SELECT {columns} FROM {partitioned}")
    op.drop_table(partitioned)
    op.create_unique_constraint(
        "uq_charge_detail_records_station_id", RECORDS, ["station_id", "transaction_id"]
    )
    op.create_unique_constraint(
        "uq_charge_detail_records_customer_id",
        RECORDS,
        ["customer_id", "idempotency_key"],
    )
    op.create_index(
        "ix_charge_detail_records_customer_id", RECORDS, ["customer_id", "id"]
    )
    op.create_index(
        "ix_charge_detail_records_station_id", RECORDS, ["station_id", "id"]
    )
    op.create_index(
        "uq_charge_detail_records_active_connector",
        RECORDS,
        ["station_id", "evse_id", "connector_id"],
        unique=True,
        postgresql_where=sa.text(ACTIVE_STATES_SQL),
    )


def _unpartition_journal() -> None:
    partitioned = f"{JOURNAL}_partitioned"
    op.rename_table(JOURNAL, partitioned)
    op.drop_constraint("pk_transaction_messages", partitioned)
    for index in (
        "ix_transaction_messages_record",
        "ix_transaction_messages_station",
        "ix_transaction_messages_sequence",
    ):
        op.drop_index(index, table_name=partitioned)
    op.execute(f"ALTER SEQUENCE {JOURNAL}_id_seq OWNED BY NONE")
    op.create_table(
        JOURNAL,
        *_journal_columns(id_default=sa.text(f"nextval('{JOURNAL}_id_seq')")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transaction_messages")),
    )
    op.execute(f"ALTER SEQUENCE {JOURNAL}_id_seq OWNED BY {JOURNAL}.id")
    columns = ", ".join(column.name for column in _journal_columns(id_default=None))
    op.execute(f"INSERT INTO {JOURNAL} ({columns}) SELECT {columns} FROM {partitioned}")
    op.drop_table(partitioned)
    op.create_index("ix_transaction_messages_record", JOURNAL, ["record_id", "id"])
    op.create_index("ix_transaction_messages_station", JOURNAL, ["station_id", "id"])
    op.create_index(
        "uq_transaction_messages_sequence",
        JOURNAL,
        ["station_id", "transaction_id", "seq_no"],
        unique=True,
        postgresql_where=sa.text(SEQUENCE_SQL),
    )


# -- month partitions ------------------------------------------------------------
#
# Written out here rather than imported from csms.db.partitions: a migration
# must do the same thing in a year, whatever the code has become by then.


def _month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    if month.month == 12:
        return month.replace(year=month.year + 1, month=1)
    return month.replace(month=month.month + 1)


def _months(now: datetime, oldest: datetime | None) -> list[datetime]:
    """This month, MONTHS_AHEAD after it, and every month since the oldest row
    (rows newer than that, from a clock far ahead, go to the default partition)."""
    start = _month_start(now)
    if oldest is not None:
        earliest = start
        for _ in range(MONTHS_BEHIND_LIMIT):
            earliest = earliest.replace(
                year=earliest.year - (earliest.month == 1),
                month=12 if earliest.month == 1 else earliest.month - 1,
            )
        start = min(start, max(_month_start(oldest), earliest))
    end = _month_start(now)
    for _ in range(MONTHS_AHEAD):
        end = _next_month(end)
    months = [start]
    while months[-1] < end:
        months.append(_next_month(months[-1]))
    return months


def _record_id_bound(month: datetime) -> str:
    # The smallest UUIDv7 made in the month's first millisecond.
    prefix = f"{int(month.timestamp() * 1000):012x}"
    return f"'{prefix[:8]}-{prefix[8:]}-0000-0000-000000000000'"


def _time_bound(month: datetime) -> str:
    return f"'{month.isoformat()}'"


def _create_partitions(
    table: str, months: list[datetime], bound: Callable[[datetime], str]
) -> None:
    for month in months:
        op.execute(
            f"CREATE TABLE {table}_{month:%Y_%m} PARTITION OF {table} "
            f"FOR VALUES FROM ({bound(month)}) TO ({bound(_next_month(month))})"
        )
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")


def _oldest_id_time(table: str) -> datetime | None:
    """When the oldest record id (UUIDv7) held was made; None if none is."""
    record_id = op.get_bind().scalar(sa.text(f"SELECT min(id) FROM {table}"))
    if not record_id:
        return None
    try:
        milliseconds = int(record_id.replace("-", "")[:12], 16)
    except ValueError:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
