"""Engines and sessions for the embedded default (SQLite) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """Build the engine for a database URL, tuned for what it is.

    SQLite runs in WAL mode with foreign keys on and a busy timeout, so that the
    gateway and the HTTP API can write at the same time without "database is
    locked" errors. The folder of an SQLite file is created when missing.

    PostgreSQL connections run with ``synchronous_commit=on`` whatever the
    server's default: a commit returns only once it is on disk, so that what a
    station was told is stored survives a crash of the server (ADR 0006).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **options)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 10)
    # No ping before each checkout: it costs a round trip and ~250 µs of CPU
    # on every transaction (a fifth of an Authorize, bench_messages). After a
    # database restart the first statement on a dead connection fails as a
    # passing outage (the station resends, ADR 0006) and SQLAlchemy replaces
    # every connection of the pool at once.
    options.setdefault("pool_pre_ping", False)
    if parsed.get_backend_name() == "postgresql":
        connect_args = dict(options.pop("connect_args", {}))
        server_settings = dict(connect_args.get("server_settings", {}))
        server_settings["synchronous_commit"] = "on"
        connect_args["server_settings"] = server_settings
        options["connect_args"] = connect_args
    return create_async_engine(url, **options)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def single_read(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session for one read-only statement, run outside a transaction.

    A session's statements otherwise run between a BEGIN and a ROLLBACK: two
    more round trips, ~200 µs of CPU a read (an Authorize, bench_messages). One
    statement sees one snapshot either way; never write through this session.
    """
    async with sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
