"""The bus over Redis pub/sub.

One connection of this process *listens*: it is subscribed to every subject the
process subscribes to or serves, and to the process's own reply channel. A
reader task hands what arrives to mailboxes (subscribers), responders and
waiting requesters; it never runs a handler itself, so a slow handler cannot
stall the others. PUBLISH goes through a small pool of other connections.

A request is published on its subject inside an envelope (see
:mod:`csms.bus.envelope`) naming the reply channel and a correlation id; PUBLISH
answers how many connections received it, so 0 means nobody serves the subject.
The responder publishes its answer on the reply channel.

When the listening connection breaks (the server restarted, a proxy cut it,
``CLIENT KILL``), the reader reconnects with backoff and subscribes again to
everything; what was published meanwhile is lost. A silent connection is
probed with PING every ``keepalive`` seconds and replaced when PING goes
unanswered.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import secrets
from typing import Protocol
from urllib.parse import urlsplit

import structlog
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from csms.bus.base import (
    DEFAULT_MAILBOX_CAPACITY,
    DEFAULT_MAX_IN_FLIGHT,
    OVERLOADED_ANSWER,
    RESERVED_PREFIX,
    Answer,
    BusTimeout,
    BusUnavailable,
    CallbackSubscription,
    Handler,
    InFlight,
    Mailbox,
    NoResponders,
    Responder,
    Subscription,
    TaskSet,
    raise_failed,
    run_responder,
    validate_subject,
)
from csms.bus.envelope import (
    EnvelopeError,
    Request,
    encode_reply,
    encode_request,
    parse_reply,
    parse_request,
)

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.bus")

DEFAULT_OPERATION_TIMEOUT = 5.0
DEFAULT_KEEPALIVE = 5.0
DEFAULT_MAX_CONNECTIONS = 16
FIRST_RECONNECT_DELAY = 0.05
MAX_RECONNECT_DELAY = 2.0

_SUBSCRIBE = b"subscribe"
_UNSUBSCRIBE = b"unsubscribe"
_MESSAGE = b"message"


class _Route(Protocol):
    """Where the reader hands a message for one registration."""

    def offer(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class _Service:
    """A ``serve`` registration: each request answered in its own task."""

    def __init__(
        self, subject: str, responder: Responder, bus: RedisBus, max_in_flight: int
    ) -> None:
        self.subject = subject
        self._responder = responder
        self._bus = bus
        self._in_flight = InFlight(subject, max_in_flight)

    def offer(self, data: bytes) -> None:
        try:
            request = parse_request(data)
        except EnvelopeError as exc:
            logger.warning("bus.envelope.invalid", subject=self.subject, error=str(exc))
            return
        if not self._in_flight.start(self._answer(request)):
            # The refusal is one PUBLISH: it goes out in a task of the bus's.
            self._bus.reply_later(request, OVERLOADED_ANSWER)

    async def close(self) -> None:
        await self._in_flight.tasks.cancel_all()

    async def _answer(self, request: Request) -> None:
        answer = await run_responder(
            self._responder, request.payload, subject=self.subject
        )
        await self._bus.send_reply(
            request.reply_to,
            encode_reply(correlation_id=request.correlation_id, answer=answer),
        )


class RedisBus:
    """A :class:`~csms.bus.base.Bus` over Redis pub/sub (``redis://host:port/db``)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        client_name: str = "csms",
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT,
        keepalive: float = DEFAULT_KEEPALIVE,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        token = secrets.token_hex(6)
        # Names this process's connections in CLIENT LIST.
        self.client_name = f"{client_name}-{token}"
        self.reply_channel = f"{RESERVED_PREFIX}csms.reply.{token}"
        self._url = url
        self._operation_timeout = operation_timeout
        self._keepalive = keepalive
        self._max_connections = max_connections
        self._mailbox_capacity = mailbox_capacity
        self._max_in_flight = max_in_flight
        self._redis: Redis | None = None
        self._pool: BlockingConnectionPool | None = None
        self._listener: AbstractConnection | None = None
        self._background = TaskSet()
        # Commands on the listening connection are sent one at a time, in order.
        self._lock = asyncio.Lock()
        self._routes: dict[str, list[_Route]] = {}
        self._confirmations: dict[tuple[bytes, str], list[asyncio.Future[None]]] = {}
        self._pending: dict[int, asyncio.Future[Answer | None]] = {}
        self._correlation_ids = itertools.count(1)
        # Set while every channel, the reply channel included, is subscribed.
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def display_url(self) -> str:
        """The server's address without credentials, for logs and errors."""
        parts = urlsplit(self._url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"

    async def start(self) -> None:
        if self._closed:
            raise BusUnavailable("The bus is closed.")
        if self._redis is not None:
            return
        self._pool = BlockingConnectionPool.from_url(
            self._url,
            max_connections=self._max_connections,
            timeout=math.ceil(self._operation_timeout),
            socket_connect_timeout=self._operation_timeout,
            socket_timeout=self._operation_timeout,
            # We reconnect ourselves; a retried PUBLISH could deliver twice.
            retry=Retry(NoBackoff(), 0),
            client_name=self.client_name,
            protocol=2,
        )
        self._redis = Redis.from_pool(self._pool)
        try:
            async with asyncio.timeout(self._operation_timeout):
                async with self._lock:
                    await self._open_listener()
                self._background.spawn(self._read_forever(), name="bus-redis-reader")
                await self._ready.wait()
        except (RedisError, OSError, TimeoutError) as exc:
            await self._teardown()
            # A later start may try again from scratch.
            self._redis = self._pool = None
            reason = str(exc) or "no answer in time"
            raise BusUnavailable(
                f"Redis is not reachable at {self.display_url}: {reason}"
            ) from exc
        logger.info(
            "bus.redis.connected", url=self.display_url, client_name=self.client_name
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._teardown()
        logger.info("bus.redis.closed", client_name=self.client_name)

    async def publish(self, subject: str, data: bytes) -> None:
        redis = self._open_client()
        validate_subject(subject)
        try:
            await _publish(redis, subject, data)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(
                f"Redis is not reachable at {self.display_url}: {exc}"
            ) from exc

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        self._open_client()
        validate_subject(subject)
        mailbox = Mailbox(subject, handler, capacity=self._mailbox_capacity)
        return await self._register(subject, mailbox)

    async def serve(self, subject: str, responder: Responder) -> Subscription:
        self._open_client()
        validate_subject(subject)
        return await self._register(
            subject, _Service(subject, responder, self, self._max_in_flight)
        )

    async def request(self, subject: str, data: bytes, *, timeout: float) -> bytes:
        redis = self._open_client()
        validate_subject(subject)
        # Without the reply channel subscribed, the answer would be lost.
        if not self._ready.is_set():
            raise BusUnavailable(f"Not connected to Redis at {self.display_url}.")

        correlation_id = next(self._correlation_ids)
        answered: asyncio.Future[Answer | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[correlation_id] = answered
        envelope = encode_request(
            reply_to=self.reply_channel, correlation_id=correlation_id, payload=data
        )
        try:
            async with asyncio.timeout(timeout):
                receivers = await self._send_request(redis, subject, envelope)
                if receivers == 0:
                    raise NoResponders(subject)
                answer = await answered
        except TimeoutError:
            raise BusTimeout(
                f"No answer on {subject!r} within {timeout} seconds."
            ) from None
        finally:
            self._pending.pop(correlation_id, None)

        if answer is None:
            if self._closed:
                raise BusUnavailable("The bus closed before the answer came.")
            raise BusTimeout(
                f"The connection to Redis broke before the answer on {subject!r} came."
            )
        raise_failed(subject, answer)
        return answer.body

    def reply_later(self, request: Request, answer: Answer) -> None:
        """Send ``answer`` to ``request`` from a background task."""
        envelope = encode_reply(correlation_id=request.correlation_id, answer=answer)
        self._background.spawn(
            self.send_reply(request.reply_to, envelope), name="bus-reply"
        )

    async def send_reply(self, reply_to: str, envelope: bytes) -> None:
        """Publish a responder's answer; a lost one is logged, never raised."""
        if self._redis is None or self._closed:
            return
        try:
            receivers = await _publish(self._redis, reply_to, envelope)
        except (RedisError, OSError) as exc:
            logger.warning("bus.reply.lost", reply_to=reply_to, error=str(exc))
            return
        if receivers == 0:
            logger.debug("bus.reply.unclaimed", reply_to=reply_to)

    def _open_client(self) -> Redis:
        if self._closed:
            raise BusUnavailable("The bus is closed.")
        if self._redis is None:
            raise RuntimeError("Start the bus before using it.")
        return self._redis

    async def _teardown(self) -> None:
        self._ready.clear()
        await self._background.cancel_all()
        self._settle_all()

        routes = [route for group in self._routes.values() for route in group]
        self._routes.clear()
        for route in routes:
            await route.close()

        if self._listener is not None:
            await self._listener.disconnect()
            self._listener = None
        if self._redis is not None:
            await self._redis.aclose()

    async def _send_request(self, redis: Redis, subject: str, envelope: bytes) -> int:
        try:
            return await _publish(redis, subject, envelope)
        except RedisTimeoutError as exc:
            # Written, perhaps delivered: the outcome is unknown.
            raise BusTimeout(f"Redis did not confirm the request: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BusUnavailable(
                f"Redis is not reachable at {self.display_url}: {exc}"
            ) from exc

    async def _register(self, subject: str, route: _Route) -> Subscription:
        """Add a route; the first one on a subject subscribes the listener to it."""
        confirmed: asyncio.Future[None] | None = None
        async with self._lock:
            routes = self._routes.setdefault(subject, [])
            routes.append(route)
            if len(routes) == 1 and self._listener is not None:
                confirmed = await self._send_to_listener(_SUBSCRIBE, subject)

        # Once confirmed, a PUBLISH from any connection reaches this route.
        # Without a listener the route is subscribed when it reconnects.
        if confirmed is not None:
            try:
                async with asyncio.timeout(self._operation_timeout):
                    await confirmed
            except TimeoutError:
                await self._unregister(subject, route)
                raise BusUnavailable(
                    f"Redis at {self.display_url} did not confirm the subscription"
                    f" to {subject!r}."
                ) from None

        async def cancel() -> None:
            await self._unregister(subject, route)

        return CallbackSubscription(subject, cancel)

    async def _unregister(self, subject: str, route: _Route) -> None:
        confirmed: asyncio.Future[None] | None = None
        async with self._lock:
            routes = self._routes.get(subject, [])
            if route in routes:
                routes.remove(route)
            unused = not routes and self._routes.pop(subject, None) is not None
            if unused and self._listener is not None:
                confirmed = await self._send_to_listener(_UNSUBSCRIBE, subject)
        await route.close()

        # Once confirmed, PUBLISH no longer counts this process as a receiver
        # (a request there gets NoResponders, not a timeout).
        if confirmed is not None:
            try:
                async with asyncio.timeout(self._operation_timeout):
                    await confirmed
            except TimeoutError:
                logger.debug("bus.redis.unsubscribe_unconfirmed", subject=subject)

    async def _send_to_listener(
        self, kind: bytes, subject: str
    ) -> asyncio.Future[None] | None:
        """Send (UN)SUBSCRIBE; the future resolves when the server confirms it.

        None when the connection broke: the reader reconnects and subscribes
        to what is registered by then.
        """
        assert self._listener is not None
        confirmed = asyncio.get_running_loop().create_future()
        waiting = self._confirmations.setdefault((kind, subject), [])
        waiting.append(confirmed)
        try:
            await self._listener.send_command(
                kind.decode().upper(), subject, check_health=False
            )
        except (RedisError, OSError):
            waiting.remove(confirmed)
            return None
        return confirmed

    async def _open_listener(self) -> AbstractConnection:
        """Connect the listening connection and subscribe to everything (locked)."""
        assert self._pool is not None
        # Outside the pool: this connection lives as long as the bus.
        listener: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            await listener.connect()  # type: ignore[no-untyped-call]
            # The reply channel last: once it is confirmed, so is everything.
            await listener.send_command(
                "SUBSCRIBE", *self._routes, self.reply_channel, check_health=False
            )
        except BaseException:
            await listener.disconnect(nowait=True)
            raise
        self._listener = listener
        return listener

    async def _read_forever(self) -> None:
        while True:
            listener = self._listener or await self._reconnect()
            try:
                await self._read(listener)
            except (RedisError, OSError) as exc:
                await self._lose_listener(exc)

    async def _read(self, listener: AbstractConnection) -> None:
        pinged = False
        while True:
            response = await listener.read_response(
                timeout=self._keepalive, disconnect_on_error=False
            )
            if response is None:
                # Silence: a dead peer or a quiet hour; PING tells which.
                if pinged:
                    raise RedisConnectionError("No answer to the keepalive PING.")
                await listener.send_command("PING", check_health=False)
                pinged = True
                continue
            pinged = False
            try:
                self._dispatch(response)
            except Exception:
                logger.exception("bus.redis.dispatch_failed")

    def _dispatch(self, response: object) -> None:
        # Pub/sub frames are [kind, channel, data]; a PONG is [b"pong", b""].
        if not isinstance(response, list) or len(response) != 3:
            return
        kind, raw_channel, data = response
        channel = raw_channel.decode() if isinstance(raw_channel, bytes) else ""
        if kind == _MESSAGE and isinstance(data, bytes):
            if channel == self.reply_channel:
                self._settle(data)
                return
            for route in list(self._routes.get(channel, ())):
                route.offer(data)
        elif kind in (_SUBSCRIBE, _UNSUBSCRIBE):
            if kind == _SUBSCRIBE and channel == self.reply_channel:
                self._ready.set()
            waiting = self._confirmations.get((kind, channel))
            if waiting:
                # The server confirms commands in the order they were sent.
                waiting.pop(0).set_result(None)
                if not waiting:
                    del self._confirmations[(kind, channel)]

    def _settle(self, data: bytes) -> None:
        try:
            reply = parse_reply(data)
        except EnvelopeError as exc:
            logger.warning(
                "bus.envelope.invalid", subject=self.reply_channel, error=str(exc)
            )
            return
        answered = self._pending.get(reply.correlation_id)
        if answered is None or answered.done():
            # The requester gave up already.
            logger.debug("bus.reply.unmatched", correlation_id=reply.correlation_id)
            return
        answered.set_result(reply.answer)

    def _settle_all(self) -> None:
        """End every wait: requests in flight and unconfirmed (un)subscriptions."""
        for answered in self._pending.values():
            if not answered.done():
                answered.set_result(None)
        for waiting in self._confirmations.values():
            for confirmed in waiting:
                if not confirmed.done():
                    confirmed.set_result(None)
        self._confirmations.clear()

    async def _lose_listener(self, error: Exception) -> None:
        self._ready.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.disconnect(nowait=True)
        in_flight = len(self._pending)
        # Answers on their way went to a connection that is gone.
        self._settle_all()
        logger.warning(
            "bus.redis.disconnected",
            url=self.display_url,
            error=str(error),
            requests_in_flight=in_flight,
        )

    async def _reconnect(self) -> AbstractConnection:
        """Reconnect with growing, jittered delays until it works."""
        loop = asyncio.get_running_loop()
        lost_at = loop.time()
        attempt = 0
        while True:
            attempt += 1
            delay = min(MAX_RECONNECT_DELAY, FIRST_RECONNECT_DELAY * 2 ** (attempt - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                async with self._lock:
                    listener = await self._open_listener()
            except (RedisError, OSError) as exc:
                logger.debug(
                    "bus.redis.reconnect_failed", attempt=attempt, error=str(exc)
                )
                continue
            logger.info(
                "bus.redis.reconnected",
                url=self.display_url,
                attempts=attempt,
                subjects=len(self._routes),
                outage_seconds=round(loop.time() - lost_at, 3),
            )
            return listener


async def _publish(redis: Redis, channel: str, data: bytes) -> int:
    """PUBLISH, and how many subscribers got it; a cancellation is never lost.

    The client can return normally from a PUBLISH that was cancelled while it
    waited (seen with redis 6.4): the task's cancellation would then vanish
    and whoever cancelled it, a stop or a timeout, would wait for ever.
    """
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    receivers = int(await redis.publish(channel, data))
    if task is not None and task.cancelling() > cancelling:
        raise asyncio.CancelledError
    return receivers
