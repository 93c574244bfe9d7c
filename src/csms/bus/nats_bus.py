"""The bus over NATS core (no JetStream): native subjects, request and reply.

NATS has what the bus needs: fan-out subjects, a reply subject per request,
and a "no responders" status the server sends at once when nobody subscribes
to a request's subject. The client reconnects by itself and subscribes again;
while it reconnects, this bus refuses to publish (it would only buffer).

A responder that raises is answered with an empty-but-marked reply (header
``Csms-Bus-Status: failed``, body the exception's name), so the requester
learns at once instead of waiting for its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from urllib.parse import urlsplit

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError, NoRespondersError, SlowConsumerError
from nats.errors import TimeoutError as NatsTimeoutError

from csms.bus.base import (
    DEFAULT_MAILBOX_CAPACITY,
    DEFAULT_MAX_IN_FLIGHT,
    OVERLOADED_ANSWER,
    Answer,
    BusTimeout,
    BusUnavailable,
    CallbackSubscription,
    Handler,
    InFlight,
    NoResponders,
    Responder,
    Subscription,
    is_being_cancelled,
    raise_failed,
    run_responder,
    validate_subject,
)

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.bus")

DEFAULT_OPERATION_TIMEOUT = 5.0
DEFAULT_KEEPALIVE = 5
DEFAULT_RECONNECT_WAIT = 1
STATUS_HEADER = "Csms-Bus-Status"
FAILED = "failed"


class _Service:
    """A ``serve`` registration: each request answered in its own task."""

    def __init__(
        self, subject: str, responder: Responder, client: Client, max_in_flight: int
    ) -> None:
        self.subject = subject
        self._responder = responder
        self._client = client
        self._in_flight = InFlight(subject, max_in_flight)

    async def on_request(self, message: Msg) -> None:
        if not message.reply:
            logger.warning("bus.request.without_reply", subject=self.subject)
            return
        # The subscription's own task must stay free for the next request.
        if not self._in_flight.start(self._answer(message)):
            await self._reply(message, OVERLOADED_ANSWER)

    async def close(self) -> None:
        await self._in_flight.tasks.cancel_all()

    async def _answer(self, message: Msg) -> None:
        answer = await run_responder(
            self._responder, message.data, subject=self.subject
        )
        await self._reply(message, answer)

    async def _reply(self, message: Msg, answer: Answer) -> None:
        headers = None if answer.ok else {STATUS_HEADER: FAILED}
        try:
            await self._client.publish(message.reply, answer.body, headers=headers)
        except NatsError as exc:
            logger.warning("bus.reply.lost", subject=self.subject, error=str(exc))


class NatsBus:
    """A :class:`~csms.bus.base.Bus` over NATS (``nats://host:port``)."""

    name = "nats"

    def __init__(
        self,
        url: str,
        *,
        client_name: str = "csms",
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT,
        keepalive: int = DEFAULT_KEEPALIVE,
        reconnect_wait: int = DEFAULT_RECONNECT_WAIT,
        mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        # Names this process's connection in the server's monitoring.
        self.client_name = f"{client_name}-{secrets.token_hex(6)}"
        self._url = url
        self._operation_timeout = operation_timeout
        self._keepalive = keepalive
        self._reconnect_wait = reconnect_wait
        self._mailbox_capacity = mailbox_capacity
        self._max_in_flight = max_in_flight
        self._client = Client()
        self._started = False
        self._closed = False
        self._services: set[_Service] = set()
        self._requests: set[asyncio.Future[Msg]] = set()

    @property
    def connected(self) -> bool:
        return self._client.is_connected

    @property
    def display_url(self) -> str:
        """The server's address without credentials, for logs and errors."""
        parts = urlsplit(self._url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}"

    async def start(self) -> None:
        if self._closed:
            raise BusUnavailable("The bus is closed.")
        if self._started:
            return
        try:
            # With endless reconnection the client never gives up on a first
            # connection either; the deadline is ours.
            async with asyncio.timeout(self._operation_timeout):
                await self._client.connect(
                    servers=[self._url],
                    name=self.client_name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._reconnect_wait,
                    connect_timeout=math.ceil(self._operation_timeout),
                    ping_interval=self._keepalive,
                    max_outstanding_pings=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
        except (NatsError, OSError, TimeoutError) as exc:
            with contextlib.suppress(NatsError, OSError):
                await self._client.close()
            self._client = Client()
            reason = str(exc) or "no answer in time"
            raise BusUnavailable(
                f"NATS is not reachable at {self.display_url}: {reason}"
            ) from exc
        self._started = True
        logger.info(
            "bus.nats.connected", url=self.display_url, client_name=self.client_name
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for asking in self._requests:
            asking.cancel()
        for service in self._services:
            await service.close()
        self._services.clear()
        if self._started:
            with contextlib.suppress(NatsError, OSError):
                await self._client.close()
        logger.info("bus.nats.closed", client_name=self.client_name)

    async def publish(self, subject: str, data: bytes) -> None:
        self._check_connected()
        validate_subject(subject)
        try:
            await self._client.publish(subject, data)
        except MaxPayloadError as exc:
            raise ValueError(f"Message on {subject!r} too large for NATS.") from exc
        except NatsError as exc:
            raise BusUnavailable(
                f"NATS is not reachable at {self.display_url}: {exc}"
            ) from exc

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        self._check_usable()
        validate_subject(subject)

        async def deliver(message: Msg) -> None:
            try:
                await handler(message.data)
            except Exception:
                logger.exception("bus.handler.failed", subject=subject)

        subscription = await self._client.subscribe(
            subject, cb=deliver, pending_msgs_limit=self._mailbox_capacity
        )
        await self._confirm(subscription, subject)

        async def cancel() -> None:
            await self._unsubscribe(subscription)

        return CallbackSubscription(subject, cancel)

    async def serve(self, subject: str, responder: Responder) -> Subscription:
        self._check_usable()
        validate_subject(subject)
        service = _Service(subject, responder, self._client, self._max_in_flight)
        subscription = await self._client.subscribe(
            subject, cb=service.on_request, pending_msgs_limit=self._mailbox_capacity
        )
        self._services.add(service)
        try:
            await self._confirm(subscription, subject)
        except BusUnavailable:
            self._services.discard(service)
            raise

        async def cancel() -> None:
            await self._unsubscribe(subscription)
            self._services.discard(service)
            await service.close()

        return CallbackSubscription(subject, cancel)

    async def request(self, subject: str, data: bytes, *, timeout: float) -> bytes:
        self._check_connected()
        validate_subject(subject)
        # A task of its own, so that close() can end it: the client would let
        # it wait for its whole timeout.
        asking = asyncio.ensure_future(
            self._client.request(subject, data, timeout=timeout)
        )
        self._requests.add(asking)
        try:
            message = await asking
        except asyncio.CancelledError:
            if self._closed and not is_being_cancelled():
                raise BusUnavailable("The bus closed before the answer came.") from None
            raise
        except NoRespondersError:
            raise NoResponders(subject) from None
        except NatsTimeoutError:
            raise BusTimeout(
                f"No answer on {subject!r} within {timeout} seconds."
            ) from None
        except MaxPayloadError as exc:
            raise ValueError(f"Request on {subject!r} too large for NATS.") from exc
        except NatsError as exc:
            raise BusUnavailable(
                f"NATS is not reachable at {self.display_url}: {exc}"
            ) from exc
        finally:
            self._requests.discard(asking)

        headers = message.headers or {}
        answer = Answer(ok=headers.get(STATUS_HEADER) != FAILED, body=message.data)
        raise_failed(subject, answer)
        return answer.body

    def _check_usable(self) -> None:
        if self._closed:
            raise BusUnavailable("The bus is closed.")
        if not self._started:
            raise RuntimeError("Start the bus before using it.")

    def _check_connected(self) -> None:
        self._check_usable()
        # While reconnecting, the client would buffer and send late, or never.
        if not self._client.is_connected:
            raise BusUnavailable(f"Not connected to NATS at {self.display_url}.")

    async def _confirm(self, subscription: NatsSubscription, subject: str) -> None:
        """Wait until the server knows the subscription (a PING/PONG round trip).

        While reconnecting there is nothing to wait for: the client subscribes
        again once connected.
        """
        if not self._client.is_connected:
            return
        try:
            await self._round_trip()
        except NatsError as exc:
            await self._unsubscribe(subscription)
            raise BusUnavailable(
                f"NATS at {self.display_url} did not confirm the subscription"
                f" to {subject!r}: {exc}"
            ) from exc

    async def _unsubscribe(self, subscription: NatsSubscription) -> None:
        with contextlib.suppress(NatsError):
            await subscription.unsubscribe()
            # Once flushed, a request there gets NoResponders, not a timeout.
            if self._client.is_connected:
                await self._round_trip()

    async def _round_trip(self) -> None:
        """Return once the server has processed every command sent before.

        The client writes its flush PING straight to the socket, ahead of
        commands still in its buffer; a second PING, sent after the first PONG
        (by then the buffer was written), follows them.
        """
        timeout = math.ceil(self._operation_timeout)
        await self._client.flush(timeout=timeout)
        await self._client.flush(timeout=timeout)

    async def _on_error(self, error: Exception) -> None:
        if isinstance(error, SlowConsumerError):
            logger.warning("bus.delivery.dropped", subject=error.subject)
        elif self._client.is_connected:
            logger.warning("bus.nats.error", url=self.display_url, error=str(error))
        else:
            logger.debug("bus.nats.reconnect_failed", error=str(error) or repr(error))

    async def _on_disconnected(self) -> None:
        if not self._closed and self._started:
            logger.warning("bus.nats.disconnected", url=self.display_url)

    async def _on_reconnected(self) -> None:
        logger.info("bus.nats.reconnected", url=self.display_url)
