"""Which gateway owns a station's link, with an epoch that fences stale owners.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 20:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stations") as table:
        table.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        table.add_column(
            sa.Column(
                "owner_epoch", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
    )


def downgrade() -> None:
    op.drop_table("gateways")
    with op.batch_alter_table("stations") as table:
        table.drop_column("owner_epoch")
        table.drop_column("owner")
