"""The in-process bus of a CSMS that runs every role in one process."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from csms.bus.base import (
    DEFAULT_MAILBOX_CAPACITY,
    DEFAULT_MAX_IN_FLIGHT,
    Answer,
    BusTimeout,
    BusUnavailable,
    CallbackSubscription,
    Handler,
    InFlight,
    Mailbox,
    NoResponders,
    Responder,
    ResponderBusy,
    Subscription,
    is_being_cancelled,
    raise_failed,
    run_responder,
    validate_subject,
)

_Entry = TypeVar("_Entry")


class _Service:
    def __init__(self, subject: str, responder: Responder, max_in_flight: int) -> None:
        self.subject = subject
        self.responder = responder
        self.in_flight = InFlight(subject, max_in_flight)


class InProcessBus:
    """Subscribers and responders of this process only; nothing leaves it.

    Handlers still run in their own tasks, as with a broker: ``publish`` returns
    before they run. A request runs its responder as a task of the service;
    when the requester stops waiting, the responder carries on, as it would in
    another process.
    """

    name = "memory"

    def __init__(
        self,
        *,
        mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._mailbox_capacity = mailbox_capacity
        self._max_in_flight = max_in_flight
        self._mailboxes: dict[str, list[Mailbox]] = {}
        self._services: dict[str, list[_Service]] = {}
        self._closed = False

    @property
    def connected(self) -> bool:
        return not self._closed

    async def start(self) -> None:
        self._check_open()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        mailboxes = [box for boxes in self._mailboxes.values() for box in boxes]
        services = [service for group in self._services.values() for service in group]
        self._mailboxes.clear()
        self._services.clear()
        for mailbox in mailboxes:
            await mailbox.close()
        for service in services:
            await service.in_flight.tasks.cancel_all()

    async def publish(self, subject: str, data: bytes) -> None:
        self._check_open()
        validate_subject(subject)
        for mailbox in self._mailboxes.get(subject, ()):
            mailbox.offer(data)

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        self._check_open()
        validate_subject(subject)
        mailbox = Mailbox(subject, handler, capacity=self._mailbox_capacity)
        self._mailboxes.setdefault(subject, []).append(mailbox)

        async def cancel() -> None:
            _remove(self._mailboxes, subject, mailbox)
            await mailbox.close()

        return CallbackSubscription(subject, cancel)

    async def serve(self, subject: str, responder: Responder) -> Subscription:
        self._check_open()
        validate_subject(subject)
        service = _Service(subject, responder, self._max_in_flight)
        self._services.setdefault(subject, []).append(service)

        async def cancel() -> None:
            _remove(self._services, subject, service)
            await service.in_flight.tasks.cancel_all()

        return CallbackSubscription(subject, cancel)

    async def request(self, subject: str, data: bytes, *, timeout: float) -> bytes:
        self._check_open()
        validate_subject(subject)
        services = self._services.get(subject)
        if not services:
            raise NoResponders(subject)

        # The oldest registration answers; a subject is meant to have one.
        service = services[0]
        answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        if not service.in_flight.start(_answer(service, data, answered)):
            raise ResponderBusy(subject)
        try:
            async with asyncio.timeout(timeout):
                answer = await asyncio.shield(answered)
        except TimeoutError:
            raise BusTimeout(
                f"No answer on {subject!r} within {timeout} seconds."
            ) from None
        except asyncio.CancelledError:
            if not answered.cancelled() or is_being_cancelled():
                raise
            # The service was cancelled under the request, not the requester.
            if self._closed:
                raise BusUnavailable("The bus closed before the answer came.") from None
            raise BusTimeout(
                f"The responder on {subject!r} stopped before answering."
            ) from None
        raise_failed(subject, answer)
        return answer.body

    def _check_open(self) -> None:
        if self._closed:
            raise BusUnavailable("The bus is closed.")


async def _answer(
    service: _Service, data: bytes, answered: asyncio.Future[Answer]
) -> None:
    try:
        answer = await run_responder(service.responder, data, subject=service.subject)
    except asyncio.CancelledError:
        answered.cancel()
        raise
    if not answered.done():
        answered.set_result(answer)


def _remove(registry: dict[str, list[_Entry]], subject: str, entry: _Entry) -> None:
    entries = registry.get(subject, [])
    if entry in entries:
        entries.remove(entry)
    if not entries:
        registry.pop(subject, None)
