"""Gateway processes started and watched by ``csms serve --gateways N``.

One process may hold ~19,900 sockets here (a hard open-file limit), so the fleet
needs several gateways. They all listen on the OCPP port (SO_REUSEPORT: the
kernel spreads new connections over them), each under a stable id
(``<gateway_id>-<n>``), so that a restarted gateway releases exactly the
stations it held. A gateway that dies is started again after a pause that grows
while it keeps dying; its stations reconnect meanwhile, to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import structlog

from csms.settings import LogFormat, Settings

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.supervisor")

# Restart pauses: doubled after each quick death, up to the cap.
FIRST_PAUSE = 0.5
LONGEST_PAUSE = 30.0
# A gateway that ran this long before dying starts again at once.
STEADY_AFTER = 60.0
# TODO: a gateway holding ~16,000 stations needs longer than this to close
# them all properly; it is killed, and they reconnect as after a crash.
STOP_GRACE = 20.0


@dataclass
class _Child:
    gateway_id: str
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    pause: float = FIRST_PAUSE
    due: float = 0.0
    restarts: int = 0


class GatewayProcesses:
    def __init__(
        self, settings: Settings, *, count: int, log_format: LogFormat | None = None
    ) -> None:
        self._settings = settings
        self._log_format = log_format
        self._children = [
            _Child(gateway_id=f"{settings.gateway_id}-{number}")
            for number in range(1, count + 1)
        ]

    @property
    def gateway_ids(self) -> list[str]:
        return [child.gateway_id for child in self._children]

    def pids(self) -> dict[str, int]:
        return {
            child.gateway_id: child.process.pid
            for child in self._children
            if child.process is not None and child.process.poll() is None
        }

    def start(self) -> None:
        for child in self._children:
            self._spawn(child)

    def _spawn(self, child: _Child) -> None:
        environment = dict(os.environ)
        environment["CSMS_GATEWAY_ID"] = child.gateway_id
        environment["CSMS_OCPP_REUSE_PORT"] = "true"
        # The gateways share one pool budget: N full pools would pass
        # PostgreSQL's connection limit (100 by default) and shut stations out.
        pool_size, max_overflow = gateway_pool(self._settings, len(self._children))
        environment["CSMS_DATABASE_POOL_SIZE"] = str(pool_size)
        environment["CSMS_DATABASE_MAX_OVERFLOW"] = str(max_overflow)
        command = [sys.executable, "-m", "csms", "serve", "--role", "gateway"]
        if self._log_format is not None:
            command += ["--log-format", self._log_format.value]
        child.process = subprocess.Popen(command, env=environment)  # noqa: S603
        child.started = time.monotonic()
        logger.info(
            "supervisor.gateway.started",
            gateway=child.gateway_id,
            pid=child.process.pid,
            restarts=child.restarts,
        )

    async def supervise(self, *, until: asyncio.Event) -> None:
        """Restart gateways that die, until ``until`` is set."""
        while not until.is_set():
            now = time.monotonic()
            for child in self._children:
                self._check(child, now=now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), timeout=0.5)

    def _check(self, child: _Child, *, now: float) -> None:
        process = child.process
        if process is not None:
            code = process.poll()
            if code is None:
                return
            lived = now - child.started
            child.pause = (
                FIRST_PAUSE
                if lived >= STEADY_AFTER
                else min(child.pause * 2, LONGEST_PAUSE)
            )
            child.due = now + child.pause
            child.process = None
            logger.warning(
                "supervisor.gateway.died",
                gateway=child.gateway_id,
                code=code,
                lived_seconds=round(lived, 1),
                restart_in=child.pause,
            )
            return
        if now >= child.due:
            child.restarts += 1
            self._spawn(child)

    async def stop(self) -> None:
        """SIGTERM every gateway (they close their sockets properly), then wait."""
        running = [c.process for c in self._children if c.process is not None]
        for process in running:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for process in running:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                await asyncio.to_thread(process.wait, remaining)
            except subprocess.TimeoutExpired:
                logger.warning("supervisor.gateway.killed", pid=process.pid)
                process.kill()
                await asyncio.to_thread(process.wait)


def gateway_pool(settings: Settings, gateways: int) -> tuple[int, int]:
    """Each of ``gateways`` processes' share of the configured pool: its size
    (at least 2: the group-commit writer and one message) and its overflow."""
    return (
        max(2, math.ceil(settings.database_pool_size / gateways)),
        math.ceil(settings.database_max_overflow / gateways),
    )
