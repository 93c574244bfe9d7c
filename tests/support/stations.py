"""Real station clients: the ``ocpp`` package's charge points over real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import websockets
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v201 import ChargePoint as ChargePoint201
from websockets.asyncio.client import ClientConnection

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class StationClient:
    """A connected station: its charge point (to send calls) and its socket."""

    station_id: str
    version: str
    socket: ClientConnection
    charge_point: Any
    reader: asyncio.Task[None]

    async def call(self, payload: Any, **options: Any) -> Any:
        return await self.charge_point.call(payload, **options)


async def open_socket(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
) -> ClientConnection:
    return await websockets.connect(
        url,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=10,
        ping_interval=None,
    )


@contextlib.asynccontextmanager
async def connected_station(
    ocpp_url: str,
    station_id: str,
    password: str,
    *,
    version: str = V16,
    charge_point_class: type[Any] | None = None,
) -> AsyncIterator[StationClient]:
    """Connect a station with the ocpp package's charge point and run its reader."""
    socket = await open_socket(
        f"{ocpp_url}/{station_id}",
        headers=basic_auth(station_id, password),
        subprotocols=[version],
    )
    cls = charge_point_class or (ChargePoint16 if version == V16 else ChargePoint201)
    charge_point = cls(station_id, socket, response_timeout=10)
    reader = asyncio.create_task(_read(charge_point))
    try:
        yield StationClient(station_id, version, socket, charge_point, reader)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await socket.close()


async def _read(charge_point: Any) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        await charge_point.start()
