"""What both baseline servers share: the OCPP handshake, forking N servers onto
one port, stopping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")


def accept_ocpp_paths(socket: ServerConnection, request: Request) -> Response | None:
    """Refuse a handshake on any path but /ocpp/<station-id>."""
    if not request.path.startswith("/ocpp/"):
        return socket.respond(404, "Not found.\n")
    return None


def select_subprotocol(socket: ServerConnection, offered: list[str]) -> str | None:
    """The newest OCPP version the station offers."""
    for protocol in SUBPROTOCOLS:
        if protocol in offered:
            return protocol
    return None


def run_forked(processes: int, serve_one: Callable[[], None]) -> None:
    """Run ``serve_one`` in this process, or in N forked children that share the
    port (each listener sets SO_REUSEPORT); SIGTERM to the parent stops them all."""
    if processes <= 1:
        serve_one()
        return
    children: list[int] = []
    for _ in range(processes):
        child = os.fork()
        if child == 0:
            try:
                serve_one()
            finally:
                os._exit(0)
        children.append(child)

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
    sys.stdout.flush()


async def wait_until_stopped(stop: asyncio.Event, duration: float | None) -> None:
    """Until ``stop`` is set, or ``duration`` seconds when given (never forever
    by accident in a benchmark)."""
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def run_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run ``main`` on asyncio's own loop or on uvloop, as the server under
    comparison does (``csms serve --event-loop``)."""
    if event_loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)
