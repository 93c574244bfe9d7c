"""Readiness: may a load balancer send this process traffic?

``/healthz`` says the process runs; ``/readyz`` says it can do its work: the
database answers ``SELECT 1`` within a short timeout and the gateway listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.health")

DATABASE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Readiness:
    sessionmaker: async_sessionmaker[AsyncSession]
    gateway_started: Callable[[], bool]
    database_timeout: float = DATABASE_TIMEOUT
    # Several processes: whether the bus to the others is connected.
    bus_connected: Callable[[], bool] | None = None

    async def check(self) -> dict[str, str]:
        """Each dependency and ``"ok"``, or a sentence saying what is wrong."""
        report = {
            "database": await self._check_database(),
            "gateway": "ok" if self.gateway_started() else "not started",
        }
        if self.bus_connected is not None:
            report["bus"] = "ok" if self.bus_connected() else "reconnecting"
        return report

    async def _check_database(self) -> str:
        try:
            async with asyncio.timeout(self.database_timeout):
                async with self.sessionmaker() as session:
                    await session.execute(text("SELECT 1"))
        except TimeoutError:
            logger.warning("health.database.slow", timeout=self.database_timeout)
            return f"no answer within {self.database_timeout:g} s"
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("health.database.unreachable", error=type(exc).__name__)
            return "unreachable"
        return "ok"
