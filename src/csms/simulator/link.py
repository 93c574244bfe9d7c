"""A simulated station's end of its WebSocket link, which outlives one socket.

A real charging station does not stop when its link drops: it keeps charging,
queues what it must report, reconnects with a backoff and then delivers the
queue. :class:`ReconnectingLink` is what the station's charge point talks
through: ``send`` fails at once while the link is down, ``recv`` waits across
reconnections, and ``while_up`` abandons a wait for an answer as soon as the
socket it was sent on goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast

import websockets
from websockets.asyncio.client import ClientConnection

_T = TypeVar("_T")

Connect = Callable[[], Awaitable[ClientConnection]]


class LinkDown(ConnectionError):
    """The station has no socket to the CSMS right now."""


class ReconnectingLink:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._socket: ClientConnection | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self.connections = 0

    @property
    def online(self) -> bool:
        return self._socket is not None

    @property
    def socket(self) -> ClientConnection | None:
        """The current socket; None while the link is down."""
        return self._socket

    async def open(self) -> None:
        """Connect once; connection errors propagate to the caller."""
        self._attach(await self._connect())

    async def reopen(self) -> bool:
        """Try to connect again; False when the CSMS cannot be reached."""
        try:
            socket = await self._connect()
        except (OSError, TimeoutError, websockets.InvalidHandshake, EOFError):
            return False
        self._attach(socket)
        return True

    def _attach(self, socket: ClientConnection) -> None:
        self._socket = socket
        self.connections += 1
        self._down.clear()
        self._up.set()

    def _detach(self, socket: ClientConnection) -> None:
        if self._socket is not socket:
            return
        self._socket = None
        self._up.clear()
        self._down.set()

    async def wait_up(self) -> None:
        await self._up.wait()

    async def wait_closed(self) -> None:
        """Wait until the current socket closes, then mark the link down."""
        socket = self._socket
        if socket is None:
            return
        await socket.wait_closed()
        self._detach(socket)

    def cut(self) -> None:
        """Drop the socket without a closing handshake, as a broken cable would."""
        socket = self._socket
        if socket is not None:
            socket.transport.abort()
            self._detach(socket)

    async def close(self) -> None:
        socket = self._socket
        if socket is not None:
            self._detach(socket)
            await socket.close()

    # -- what the ocpp package's charge point calls -------------------------------

    async def send(self, message: str) -> None:
        socket = self._socket
        if socket is None:
            raise LinkDown("the link to the CSMS is down")
        try:
            await socket.send(message)
        except websockets.ConnectionClosed as exc:
            self._detach(socket)
            raise LinkDown("the link to the CSMS closed") from exc

    async def recv(self) -> str | bytes:
        while True:
            await self._up.wait()
            socket = self._socket
            if socket is None:
                continue
            try:
                return await socket.recv()
            except websockets.ConnectionClosed:
                self._detach(socket)

    async def while_up(
        self, work: Awaitable[_T], *, timeout: float | None = None
    ) -> _T:
        """Await ``work``; raise :class:`LinkDown` if the link drops first, and
        TimeoutError if ``timeout`` seconds pass first.

        An answer can only come back on the socket its request went out on, so
        waiting past that socket's end would only delay the resend.
        """
        if not self.online:
            if asyncio.iscoroutine(work):
                work.close()
            raise LinkDown("the link to the CSMS is down")
        task: asyncio.Future[Any] = asyncio.ensure_future(work)
        down: asyncio.Future[Any] = asyncio.ensure_future(self._down.wait())
        try:
            await asyncio.wait(
                {task, down}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            down.cancel()
        if task.done():
            return cast(_T, task.result())
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if not down.done():
            raise TimeoutError(f"no answer within {timeout} s")
        raise LinkDown("the link to the CSMS dropped while waiting for an answer")


def backoff_delays(first: float, longest: float) -> Iterator[float]:
    """Reconnection delays: doubling from ``first`` up to ``longest``."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, longest)
