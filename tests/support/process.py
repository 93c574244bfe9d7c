"""The CSMS as a separate process, for tests that stop or kill it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

_RUNNING = re.compile(rb"CSMS running \(([^)]*)\):")
_HTTP_PORT = re.compile(rb"http://[\d.]+:(\d+)/docs")
_OCPP_PORT = re.compile(rb"ws://[\d.]+:(\d+)/ocpp")


@dataclass
class CsmsProcess:
    process: asyncio.subprocess.Process
    http_port: int
    ocpp_port: int
    log: bytearray

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def terminate(self, timeout: float = 20) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def kill(self) -> None:
        self.process.kill()
        await self.process.wait()


def csms_command() -> str:
    return str(Path(sys.executable).parent / "csms")


async def start_csms(
    database_url: str,
    *,
    http_port: int = 0,
    ocpp_port: int = 0,
    extra_env: dict[str, str] | None = None,
    timeout: float = 30,
    roles: tuple[str, ...] = (),
    arguments: tuple[str, ...] = (),
) -> CsmsProcess:
    """Run ``csms serve`` (with ``roles``: ``--role`` each) and wait until it
    prints where it listens; a port it does not open is 0."""
    env = {
        **os.environ,
        "CSMS_DATABASE_URL": database_url,
        "CSMS_HTTP_HOST": "127.0.0.1",
        "CSMS_HTTP_PORT": str(http_port),
        "CSMS_OCPP_HOST": "127.0.0.1",
        "CSMS_OCPP_PORT": str(ocpp_port),
        **(extra_env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        csms_command(),
        "serve",
        *(argument for role in roles for argument in ("--role", role)),
        *arguments,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = bytearray()

    async def wait_until_running() -> tuple[int, int]:
        assert process.stderr is not None
        while True:
            line = await process.stderr.readline()
            if not line:
                raise RuntimeError(f"csms serve exited early:\n{log.decode()}")
            log.extend(line)
            if _RUNNING.search(line.rstrip()):
                http = _HTTP_PORT.search(line)
                ocpp = _OCPP_PORT.search(line)
                return (
                    int(http.group(1)) if http else 0,
                    int(ocpp.group(1)) if ocpp else 0,
                )

    http, ocpp = await asyncio.wait_for(wait_until_running(), timeout)

    async def drain() -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            log.extend(line)

    # Keep reading its log so that a full pipe never blocks it.
    process._csms_drain = asyncio.create_task(drain())  # type: ignore[attr-defined]
    return CsmsProcess(process, http, ocpp, log)
