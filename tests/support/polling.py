"""Waiting for something that happens on the other side of a socket, briefly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_INTERVAL = 0.01


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 5.0
) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout:g} s")
        await asyncio.sleep(POLL_INTERVAL)
