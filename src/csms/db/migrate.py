"""Applying the schema: Alembic migrations, run programmatically.

Production paths create the schema only through these migrations, never with
``metadata.create_all``.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPT_LOCATION = "csms.db:migrations"


def build_alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    return config


async def migrate(engine: AsyncEngine, *, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""

    def upgrade(connection: Connection) -> None:
        config = build_alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)
