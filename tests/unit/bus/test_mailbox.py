"""Delivery to one subscriber: order, a full mailbox, cancelling from inside."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from csms.bus import InProcessBus
from csms.bus.base import Mailbox


async def test_a_full_mailbox_drops_the_newest_and_warns_once() -> None:
    release = asyncio.Event()
    received: list[bytes] = []

    async def slow(data: bytes) -> None:
        await release.wait()
        received.append(data)

    mailbox = Mailbox("test.full", slow, capacity=2)
    with capture_logs() as logs:
        for number in range(6):
            mailbox.offer(f"{number}".encode())
            # The first message is taken by the handler at once.
            await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0.01)
    await mailbox.close()

    assert received == [b"0", b"1", b"2"]
    assert mailbox.dropped == 3
    warnings = [entry for entry in logs if entry["event"] == "bus.delivery.dropped"]
    assert warnings == [
        {
            "event": "bus.delivery.dropped",
            "subject": "test.full",
            "dropped": 1,
            "log_level": "warning",
        }
    ]


async def test_a_handler_may_cancel_its_own_subscription() -> None:
    bus = InProcessBus()
    await bus.start()
    received: list[bytes] = []
    done = asyncio.Event()

    async def once(data: bytes) -> None:
        received.append(data)
        await subscription.cancel()
        done.set()

    subscription = await bus.subscribe("test.once", once)
    await bus.publish("test.once", b"first")
    await asyncio.wait_for(done.wait(), 1)
    await bus.publish("test.once", b"second")
    await asyncio.sleep(0.01)

    assert received == [b"first"]
    await bus.close()
