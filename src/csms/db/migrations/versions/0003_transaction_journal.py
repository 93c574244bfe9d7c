"""The append-only journal of transaction messages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 17:37:36.914455
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transaction_messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transaction_messages")),
    )
    with op.batch_alter_table("transaction_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transaction_messages_record", ["record_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_transaction_messages_station", ["station_id", "id"], unique=False
        )
        batch_op.create_index(
            "uq_transaction_messages_sequence",
            ["station_id", "transaction_id", "seq_no"],
            unique=True,
            sqlite_where=sa.text("NOT duplicate AND seq_no IS NOT NULL"),
            postgresql_where=sa.text("NOT duplicate AND seq_no IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("transaction_messages", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_transaction_messages_sequence",
            sqlite_where=sa.text("NOT duplicate AND seq_no IS NOT NULL"),
            postgresql_where=sa.text("NOT duplicate AND seq_no IS NOT NULL"),
        )
        batch_op.drop_index("ix_transaction_messages_station")
        batch_op.drop_index("ix_transaction_messages_record")

    op.drop_table("transaction_messages")
