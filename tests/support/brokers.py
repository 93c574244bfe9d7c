"""The real brokers the cluster tests join processes by (Redis, NATS).

Unreachable, a test is skipped with what to start — except under CI, where it
fails."""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio as redis

from conftest import IN_CI

REDIS_URL = os.environ.get("CSMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("CSMS_TEST_NATS_URL", "nats://127.0.0.1:4222")
BROKER_HOWTO = {
    "redis": f"Redis is not reachable at {REDIS_URL}: start redis-server, or set "
    "CSMS_TEST_REDIS_URL=redis://HOST:PORT/DB.",
    "nats": f"NATS is not reachable at {NATS_URL}: start nats-server, or set "
    "CSMS_TEST_NATS_URL=nats://HOST:PORT.",
}


async def reachable(bus: str) -> bool:
    if bus == "redis":
        client = redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            return bool(await client.ping())
        except (OSError, redis.RedisError):
            return False
        finally:
            await client.aclose()
    host, _, port = NATS_URL.removeprefix("nats://").partition(":")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port or 4222)), 2
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


# Imported by a test module, it gives its tests the fixture ``bus_url``.
@pytest.fixture(name="bus_url", params=["redis", "nats"])
async def broker_url(request: pytest.FixtureRequest) -> str:
    bus = str(request.param)
    if not await reachable(bus):
        if IN_CI:
            pytest.fail(BROKER_HOWTO[bus])
        pytest.skip(BROKER_HOWTO[bus])
    return REDIS_URL if bus == "redis" else NATS_URL
