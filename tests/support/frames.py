"""Raw OCPP-J frames over a real socket: what a well-behaved client never sends."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

from support.stations import V16, V201, basic_auth, open_socket

BOOT_PAYLOADS: dict[str, dict[str, Any]] = {
    V16: {"chargePointVendor": "Acme", "chargePointModel": "Volt-1"},
    V201: {
        "chargingStation": {"vendorName": "Acme", "model": "Volt-2"},
        "reason": "PowerUp",
    },
}

_message_ids = itertools.count(1)


@contextlib.asynccontextmanager
async def raw_station(
    ocpp_url: str, station_id: str, password: str, *, version: str = V16
) -> AsyncIterator[ClientConnection]:
    """An authenticated socket that sends and reads frames exactly as written."""
    socket = await open_socket(
        f"{ocpp_url}/{station_id}",
        headers=basic_auth(station_id, password),
        subprotocols=[version],
    )
    try:
        yield socket
    finally:
        await socket.close()


async def receive_frame(socket: ClientConnection, *, timeout: float = 5.0) -> Any:
    return orjson.loads(await asyncio.wait_for(socket.recv(), timeout))


async def send_call(
    socket: ClientConnection,
    action: str,
    payload: dict[str, Any],
    *,
    message_id: str | None = None,
) -> list[Any]:
    """Send a CALL and return the frame that answers it."""
    message_id = message_id or f"m-{next(_message_ids)}"
    await socket.send(orjson.dumps([2, message_id, action, payload]).decode())
    return list(await receive_frame(socket))


async def send_text(socket: ClientConnection, text: str) -> list[Any]:
    """Send any text as one message and return the frame that answers it."""
    await socket.send(text)
    return list(await receive_frame(socket))


async def boot(socket: ClientConnection, version: str) -> None:
    answer = await send_call(socket, "BootNotification", BOOT_PAYLOADS[version])
    assert answer[0] == 3, answer
    assert answer[2]["status"] == "Accepted"
