"""Whether the database answers, and which failures mean it does not.

Two kinds of failure matter at the station edge:

- **transient** (:func:`is_transient`): our own fault, and passing — the
  database is unreachable, restarting, locked for too long, or an operation
  timed out. A station is never answered with an error for these: it would
  count the error as a failed attempt and, after a few, discard the message.
  Its socket is closed instead, and it resends after reconnecting.
- **connection lost** (:func:`is_connection_lost`), the subset of transient
  failures that says the database itself is gone. It turns
  :class:`DatabaseHealth` unavailable: the gateway then refuses new station
  connections with 503 and closes the live ones, until the probe sees the
  database answer again.

Anything else (an integrity error, a programming error) is a bug of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.db")

# Failures of a database that cannot be reached or has gone away.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    sa_exc.DisconnectionError,
    sa_exc.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # Class 57: the server shuts down or is not accepting connections yet.
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
# Failures that pass: worth retrying, not worth an error to a station.
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *_CONNECTION_ERRORS,
    sa_exc.OperationalError,
    sa_exc.TimeoutError,
    TimeoutError,
)
# A DBAPIError of these classes is about the statement, never the connection.
_STATEMENT_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.IntegrityError,
    sa_exc.ProgrammingError,
    sa_exc.DataError,
    sa_exc.NotSupportedError,
)
_PROBE_TIMEOUT = 5.0


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a passing database failure rather than a bug."""
    if isinstance(error, _STATEMENT_ERRORS):
        return False
    return any(_is_transient_one(cause) for cause in _causes(error))


def is_connection_lost(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached at all."""
    for cause in _causes(error):
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        # TimeoutError is an OSError, but a timeout says slow (a busy pool, a
        # long lock), not gone: closing every station for it would turn a
        # busy minute into a reconnect storm.
        if isinstance(cause, TimeoutError):
            continue
        if isinstance(cause, _CONNECTION_ERRORS):
            return True
    return False


class DatabaseHealth:
    """Whether the database answers, as the gateway needs to know it.

    It turns unavailable when an operation reports a lost connection
    (:meth:`report_failure`) or a probe fails; a probe task, ``SELECT 1``
    every ``interval``, turns it available again. Listeners registered with
    :meth:`on_unavailable` are called once per outage.
    """

    def __init__(self, engine: AsyncEngine, *, interval: timedelta) -> None:
        self._engine = engine
        self._interval = interval.total_seconds()
        self._available = True
        self._listeners: list[Callable[[], None]] = []
        self._probe: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self._available

    def on_unavailable(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def report_failure(self, error: BaseException) -> None:
        """Tell of a failed database operation; a lost connection means outage."""
        if is_connection_lost(error):
            self._mark_unavailable(reason=type(error).__name__)

    def start(self) -> None:
        if self._probe is None:
            self._probe = asyncio.create_task(self._run_probe(), name="database-probe")

    async def stop(self) -> None:
        if self._probe is None:
            return
        self._probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._probe
        self._probe = None

    async def probe(self) -> bool:
        """Ask the database once; update and return whether it answers."""
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                async with self._engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as error:
            if not is_transient(error):
                raise
            # A probe that only timed out may be waiting for a busy pool: an
            # outage is declared on a lost connection, not on slowness.
            if is_connection_lost(error):
                self._mark_unavailable(reason=type(error).__name__)
            else:
                logger.warning("db.health.probe_slow", error=type(error).__name__)
            return self._available
        if not self._available:
            self._available = True
            logger.info("db.health.available")
        return True

    async def _run_probe(self) -> None:
        # Runs while available too: an outage is noticed even when no station
        # sends anything, and their sockets are closed before they write.
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.probe()
            except Exception:
                logger.exception("db.health.probe_failed")

    def _mark_unavailable(self, *, reason: str) -> None:
        if not self._available:
            return
        self._available = False
        logger.warning("db.health.unavailable", reason=reason)
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                logger.exception("db.health.listener_failed")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, what SQLAlchemy wrapped in it, and what it was raised from.

    Not what was being handled when it was raised (``__context__``): a bug in
    an ``except`` block is still a bug.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending.extend(
            [
                orig if isinstance(orig, BaseException) else None,
                current.__cause__,
            ]
        )


def _is_transient_one(error: BaseException) -> bool:
    if isinstance(error, _STATEMENT_ERRORS):
        return False
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _TRANSIENT_ERRORS)
