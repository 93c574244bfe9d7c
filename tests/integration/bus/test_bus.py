"""The bus transports: fan-out, request/reply, failures, closing, reconnection.

Each behaviour runs on every transport. Redis and NATS are real servers
(``CSMS_TEST_REDIS_URL``, ``CSMS_TEST_NATS_URL``); without one, its tests are
skipped with instructions — except under CI (``CI=true``), where they fail.
Several "buses" stand for several processes: each Redis or NATS bus has its own
connections. The in-process bus has one process only, so its "other" bus is the
same one.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from csms.bus import (
    Bus,
    BusTimeout,
    BusUnavailable,
    NatsBus,
    NoResponders,
    RedisBus,
    ResponderBusy,
    ResponderFailed,
    connect_bus,
)

from conftest import IN_CI

REDIS_URL = os.environ.get("CSMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("CSMS_TEST_NATS_URL", "nats://127.0.0.1:4222")
HOWTO = {
    "redis": "Redis is not reachable at {url}; start redis-server or set "
    "CSMS_TEST_REDIS_URL=redis://HOST:PORT/DB.",
    "nats": "NATS is not reachable at {url}; start nats-server or set "
    "CSMS_TEST_NATS_URL=nats://HOST:PORT.",
}
BROKER_URLS = {"redis": REDIS_URL, "nats": NATS_URL}
BROKERS = list(BROKER_URLS)
DEFAULT_PORTS = {"redis": 6379, "nats": 4222}
# Long enough for a loaded test machine; the tests never wait it out on success.
PATIENCE = 10.0

MakeBus = Callable[[], Awaitable[Bus]]


@cache
def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _require_broker(transport: str) -> str:
    url = BROKER_URLS[transport]
    parts = urlsplit(url)
    if not _reachable(
        parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[transport]
    ):
        message = HOWTO[transport].format(url=url)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(params=["memory", "redis", "nats"])
def transport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def bus_url(transport: str) -> str | None:
    return None if transport == "memory" else _require_broker(transport)


@pytest.fixture
async def make_bus(transport: str, bus_url: str | None) -> AsyncIterator[MakeBus]:
    """Start a bus as another process would; all are closed after the test."""
    buses: list[Bus] = []

    async def make() -> Bus:
        if transport == "memory" and buses:
            return buses[0]
        bus = connect_bus(bus_url, client_name="csms-test")
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


@pytest.fixture
def subject() -> str:
    """Unique per test: parallel runs share the brokers."""
    return f"test.{uuid.uuid4().hex}"


class Inbox:
    """Collects what a subscription receives."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self._arrived = asyncio.Event()

    async def handler(self, data: bytes) -> None:
        self.messages.append(data)
        self._arrived.set()

    async def wait_for(self, count: int) -> list[bytes]:
        async with asyncio.timeout(PATIENCE):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages


async def echo(data: bytes) -> bytes:
    return b"answer:" + data


# Polling: these states have no event to wait on from outside the bus.
async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def _events(logs: list[MutableMapping[str, Any]]) -> set[str]:
    return {entry["event"] for entry in logs}


# Fan-out


async def test_a_message_reaches_every_subscriber_on_every_bus(
    make_bus: MakeBus, subject: str
) -> None:
    publisher, first, second = await make_bus(), await make_bus(), await make_bus()
    first_inbox, second_inbox = Inbox(), Inbox()
    await first.subscribe(subject, first_inbox.handler)
    await second.subscribe(subject, second_inbox.handler)

    for number in range(3):
        await publisher.publish(subject, f"event-{number}".encode())

    expected = [b"event-0", b"event-1", b"event-2"]
    assert await first_inbox.wait_for(3) == expected
    assert await second_inbox.wait_for(3) == expected


async def test_a_publish_cancelled_while_it_waits_ends_cancelled(
    make_bus: MakeBus, subject: str
) -> None:
    # A stop cancels its sender mid-publish; a swallowed cancellation would
    # leave the stop waiting for ever.
    bus = await make_bus()
    outcomes: list[bool] = []
    for number in range(40):
        publishing = asyncio.create_task(bus.publish(subject, b"%d" % number))
        # Let the publish get as far as waiting on the broker, then cancel.
        for _ in range(number % 20):
            await asyncio.sleep(0)
        if publishing.done():
            continue
        publishing.cancel()
        await asyncio.wait({publishing}, timeout=PATIENCE)
        outcomes.append(publishing.cancelled())

    assert all(outcomes)


async def test_a_failing_handler_does_not_stop_later_deliveries(
    make_bus: MakeBus, subject: str
) -> None:
    publisher, subscriber = await make_bus(), await make_bus()
    inbox = Inbox()

    async def fragile(data: bytes) -> None:
        if data == b"poison":
            raise RuntimeError("handler bug")
        await inbox.handler(data)

    await subscriber.subscribe(subject, fragile)

    with capture_logs() as logs:
        await publisher.publish(subject, b"first")
        await publisher.publish(subject, b"poison")
        await publisher.publish(subject, b"last")

        assert await inbox.wait_for(2) == [b"first", b"last"]
    assert {
        "event": "bus.handler.failed",
        "subject": subject,
        "exc_info": True,
        "log_level": "error",
    } in logs


async def test_a_cancelled_subscription_receives_nothing_more(
    make_bus: MakeBus, subject: str
) -> None:
    publisher, leaving, staying = await make_bus(), await make_bus(), await make_bus()
    left, stayed = Inbox(), Inbox()
    subscription = await leaving.subscribe(subject, left.handler)
    await staying.subscribe(subject, stayed.handler)
    await publisher.publish(subject, b"before")
    await left.wait_for(1)

    await subscription.cancel()
    await subscription.cancel()
    await publisher.publish(subject, b"after")

    # The other subscriber got "after": had it been sent to the cancelled one,
    # it would have arrived by now too (same publisher, same order).
    assert await stayed.wait_for(2) == [b"before", b"after"]
    await asyncio.sleep(0.1)
    assert left.messages == [b"before"]


# Request/reply


async def test_a_request_is_answered_by_the_responder_on_another_bus(
    make_bus: MakeBus, subject: str
) -> None:
    responder, requester = await make_bus(), await make_bus()
    await responder.serve(subject, echo)

    assert await requester.request(subject, b"ping", timeout=PATIENCE) == b"answer:ping"


async def test_a_request_nobody_serves_fails_at_once_with_no_responders(
    make_bus: MakeBus, subject: str
) -> None:
    requester = await make_bus()

    started = time.monotonic()
    with pytest.raises(NoResponders):
        await requester.request(subject, b"ping", timeout=PATIENCE)

    assert time.monotonic() - started < 1.0


async def test_a_slow_responder_gives_a_bus_timeout(
    make_bus: MakeBus, subject: str
) -> None:
    responder, requester = await make_bus(), await make_bus()
    release = asyncio.Event()

    async def slow(data: bytes) -> bytes:
        await release.wait()
        return data

    await responder.serve(subject, slow)

    started = time.monotonic()
    with pytest.raises(BusTimeout):
        await requester.request(subject, b"ping", timeout=0.3)
    elapsed = time.monotonic() - started
    release.set()

    assert 0.3 <= elapsed < 2.0


async def test_concurrent_requests_each_get_their_own_answer(
    make_bus: MakeBus, subject: str
) -> None:
    responder, requester = await make_bus(), await make_bus()

    async def jittery_echo(data: bytes) -> bytes:
        # Answers come back in another order than the requests went out.
        await asyncio.sleep(random.uniform(0, 0.02))
        return b"answer:" + data

    await responder.serve(subject, jittery_echo)
    payloads = [f"request-{number}".encode() for number in range(200)]

    answers = await asyncio.gather(
        *(requester.request(subject, payload, timeout=PATIENCE) for payload in payloads)
    )

    assert answers == [b"answer:" + payload for payload in payloads]


async def test_a_responder_that_raises_gives_responder_failed_at_once(
    make_bus: MakeBus, subject: str
) -> None:
    responder, requester = await make_bus(), await make_bus()

    async def broken(data: bytes) -> bytes:
        raise LookupError("responder bug")

    await responder.serve(subject, broken)

    started = time.monotonic()
    with capture_logs() as logs, pytest.raises(ResponderFailed, match="LookupError"):
        await requester.request(subject, b"ping", timeout=PATIENCE)

    assert time.monotonic() - started < 1.0
    assert "bus.responder.failed" in _events(logs)


async def test_a_responder_at_its_limit_refuses_more_requests_at_once(
    bus_url: str | None, subject: str
) -> None:
    responder = connect_bus(bus_url, client_name="csms-test", max_in_flight=2)
    await responder.start()
    requester = responder if bus_url is None else connect_bus(bus_url)
    if requester is not responder:
        await requester.start()
    release = asyncio.Event()
    both_held = asyncio.Event()
    handled: list[bytes] = []

    async def held(data: bytes) -> bytes:
        handled.append(data)
        if len(handled) == 2:
            both_held.set()
        await release.wait()
        return b"answer:" + data

    try:
        await responder.serve(subject, held)
        first = asyncio.create_task(requester.request(subject, b"1", timeout=PATIENCE))
        second = asyncio.create_task(requester.request(subject, b"2", timeout=PATIENCE))
        async with asyncio.timeout(PATIENCE):
            await both_held.wait()

        started = time.monotonic()
        with capture_logs() as logs, pytest.raises(ResponderBusy):
            await requester.request(subject, b"3", timeout=PATIENCE)
        refused_after = time.monotonic() - started
        release.set()

        assert await first == b"answer:1"
        assert await second == b"answer:2"
        assert refused_after < 1.0
        assert sorted(handled) == [b"1", b"2"]
        assert "bus.request.refused_busy" in _events(logs)
        # Room again: the next request is answered.
        assert await requester.request(subject, b"4", timeout=PATIENCE) == b"answer:4"
    finally:
        release.set()
        await responder.close()
        await requester.close()


async def test_a_cancelled_service_answers_no_more(
    make_bus: MakeBus, subject: str
) -> None:
    responder, requester = await make_bus(), await make_bus()
    service = await responder.serve(subject, echo)
    assert await requester.request(subject, b"ping", timeout=PATIENCE) == b"answer:ping"

    await service.cancel()

    with pytest.raises(NoResponders):
        await requester.request(subject, b"ping", timeout=PATIENCE)


# Closing


async def test_close_ends_waiting_requests_and_refuses_new_messages(
    transport: str, bus_url: str | None, subject: str
) -> None:
    tasks_before = asyncio.all_tasks()
    responder = connect_bus(bus_url)
    await responder.start()
    requester = responder if transport == "memory" else connect_bus(bus_url)
    await requester.start()
    called = asyncio.Event()

    async def never_answers(data: bytes) -> bytes:
        called.set()
        await asyncio.Event().wait()
        return data

    await responder.serve(subject, never_answers)
    await requester.subscribe(subject + ".events", Inbox().handler)
    waiting = asyncio.create_task(requester.request(subject, b"ping", timeout=PATIENCE))
    await asyncio.wait_for(called.wait(), PATIENCE)

    started = time.monotonic()
    await requester.close()
    await requester.close()

    with pytest.raises(BusUnavailable):
        await waiting
    assert time.monotonic() - started < 2.0
    with pytest.raises(BusUnavailable):
        await requester.publish(subject, b"late")
    with pytest.raises(BusUnavailable):
        await requester.request(subject, b"late", timeout=1)

    await responder.close()
    assert requester.connected is False
    # Readers, mailboxes and responders are gone with the bus.
    assert {task for task in asyncio.all_tasks() if not task.done()} <= tasks_before


@pytest.mark.parametrize("transport", BROKERS)
async def test_start_fails_with_bus_unavailable_when_the_broker_is_unreachable(
    transport: str,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        unused_port = probe.getsockname()[1]
    bus: Bus
    if transport == "redis":
        bus = RedisBus(f"redis://127.0.0.1:{unused_port}/0", operation_timeout=1)
    else:
        bus = NatsBus(f"nats://127.0.0.1:{unused_port}", operation_timeout=1)

    started = time.monotonic()
    with pytest.raises(BusUnavailable, match=str(unused_port)):
        await bus.start()

    assert time.monotonic() - started < 3.0
    await bus.close()


# Reconnection


class TcpProxy:
    """Forwards a local port to a broker: stopping it is an outage for the bus
    behind it, without touching the server the other tests share."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._links: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for transport in self._transports:
            transport.abort()
        self._transports.clear()
        for link in self._links:
            link.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _link(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                *self._target
            )
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, upstream_writer.transport}
        try:
            await asyncio.gather(
                _pipe(reader, upstream_writer), _pipe(upstream_reader, writer)
            )
        finally:
            writer.transport.abort()
            upstream_writer.transport.abort()
            self._links.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
async def proxy(transport: str, bus_url: str | None) -> AsyncIterator[TcpProxy]:
    assert bus_url is not None, "only for transports with a broker"
    parts = urlsplit(bus_url)
    forwarder = TcpProxy(
        parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[transport]
    )
    await forwarder.start()
    yield forwarder
    await forwarder.stop()


@pytest.mark.parametrize("transport", BROKERS)
async def test_an_outage_refuses_messages_then_subscriptions_come_back(
    transport: str,
    bus_url: str,
    make_bus: MakeBus,
    proxy: TcpProxy,
    subject: str,
) -> None:
    parts = urlsplit(bus_url)
    behind_proxy = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    near: Bus
    if transport == "redis":
        near = RedisBus(behind_proxy, operation_timeout=1, keepalive=1)
    else:
        near = NatsBus(behind_proxy, operation_timeout=1, keepalive=1)
    await near.start()
    far = await make_bus()
    inbox = Inbox()
    call = subject + ".call"
    try:
        await near.subscribe(subject, inbox.handler)
        await near.serve(call, echo)
        await far.publish(subject, b"before")
        await inbox.wait_for(1)

        with capture_logs() as logs:
            await proxy.stop()
            await _until(lambda: not near.connected)

            with pytest.raises(BusUnavailable):
                await near.publish(subject, b"during")
            with pytest.raises(BusUnavailable):
                await near.request(call, b"during", timeout=1)

            await proxy.start()
            await _eventually(lambda: _answers(far, call))
            await far.publish(subject, b"after")

            assert await inbox.wait_for(2) == [b"before", b"after"]
            assert await near.request(call, b"ping", timeout=PATIENCE) == b"answer:ping"
        assert {f"bus.{transport}.disconnected", f"bus.{transport}.reconnected"} <= (
            _events(logs)
        )
    finally:
        await near.close()


async def _answers(bus: Bus, subject: str) -> bool:
    try:
        return await bus.request(subject, b"ping", timeout=1) == b"answer:ping"
    except (NoResponders, BusTimeout):
        return False


@pytest.fixture
def redis_url() -> str:
    return _require_broker("redis")


async def test_redis_subscriptions_come_back_after_their_connection_is_killed(
    redis_url: str, subject: str
) -> None:
    near, far = RedisBus(redis_url), RedisBus(redis_url)
    admin = redis.Redis.from_url(redis_url)
    await near.start()
    await far.start()
    inbox = Inbox()
    call = subject + ".call"
    called, release = asyncio.Event(), asyncio.Event()

    async def held(data: bytes) -> bytes:
        called.set()
        await release.wait()
        return data

    try:
        await near.subscribe(subject, inbox.handler)
        await near.serve(call, echo)
        await far.serve(subject + ".held", held)
        waiting = asyncio.create_task(
            near.request(subject + ".held", b"ping", timeout=PATIENCE)
        )
        await asyncio.wait_for(called.wait(), PATIENCE)

        with capture_logs() as logs:
            # Only this bus's listening connection: other tests share the server.
            killed = 0
            for client in await admin.client_list(_type="pubsub"):
                if client["name"] == near.client_name:
                    await admin.client_kill_filter(_id=client["id"])
                    killed += 1
            assert killed == 1

            # Its answer would come to the dead connection: no use waiting.
            with pytest.raises(BusTimeout, match="broke"):
                await asyncio.wait_for(waiting, PATIENCE / 2)
            release.set()
            await _eventually(lambda: _answers(far, call))
            await far.publish(subject, b"after the kill")

            assert await inbox.wait_for(1) == [b"after the kill"]
        assert {"bus.redis.disconnected", "bus.redis.reconnected"} <= _events(logs)
    finally:
        await near.close()
        await far.close()
        await admin.aclose()
