"""Customers, cars, id tokens, Charge Detail Records; station location index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 17:14:39.585398
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("email", name=op.f("uq_customers_email")),
    )
    op.create_table(
        "cars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("make", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("plate", sa.String(length=20), nullable=False),
        sa.Column("battery_capacity_kwh", sa.Float(), nullable=True),
        sa.Column("connector_type", sa.String(length=50), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_cars_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cars")),
        sa.UniqueConstraint("customer_id", "plate", name=op.f("uq_cars_customer_id")),
    )
    with op.batch_alter_table("cars", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cars_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "id_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=36), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_id_tokens_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_id_tokens")),
        sa.UniqueConstraint("value", name=op.f("uq_id_tokens_value")),
    )
    with op.batch_alter_table("id_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_id_tokens_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "charge_detail_records",
        sa.Column("id", sa.String(length=36), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_detail_records")),
        sa.UniqueConstraint(
            "customer_id",
            "idempotency_key",
            name=op.f("uq_charge_detail_records_customer_id"),
        ),
        sa.UniqueConstraint(
            "station_id",
            "transaction_id",
            name=op.f("uq_charge_detail_records_station_id"),
        ),
    )
    with op.batch_alter_table("charge_detail_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_charge_detail_records_customer_id", ["customer_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_charge_detail_records_station_id", ["station_id", "id"], unique=False
        )
        batch_op.create_index(
            "uq_charge_detail_records_active_connector",
            ["station_id", "evse_id", "connector_id"],
            unique=True,
            sqlite_where=sa.text("state IN ('Pending', 'Started')"),
            postgresql_where=sa.text("state IN ('Pending', 'Started')"),
        )

    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stations_location", ["latitude", "longitude"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.drop_index("ix_stations_location")

    with op.batch_alter_table("charge_detail_records", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_charge_detail_records_active_connector",
            sqlite_where=sa.text("state IN ('Pending', 'Started')"),
            postgresql_where=sa.text("state IN ('Pending', 'Started')"),
        )
        batch_op.drop_index("ix_charge_detail_records_station_id")
        batch_op.drop_index("ix_charge_detail_records_customer_id")

    op.drop_table("charge_detail_records")
    with op.batch_alter_table("id_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_id_tokens_customer_id"))

    op.drop_table("id_tokens")
    with op.batch_alter_table("cars", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cars_customer_id"))

    op.drop_table("cars")
    op.drop_table("customers")
