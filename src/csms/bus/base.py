"""What every transport shares: the errors, the interface, subjects, and the
pieces that deliver messages to handlers and run responders.

Delivery to a subscriber goes through a :class:`Mailbox`: a bounded queue and
one task per subscription, so a subscriber's messages arrive in order, a slow
handler delays only its own subscription, and a handler that raises is logged
and meets the next message as usual.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.bus")

# A subscriber that falls this far behind loses the newest messages.
DEFAULT_MAILBOX_CAPACITY = 10_000
# A responder with this many requests in progress refuses the next one at once
# (ResponderBusy) instead of starting it: a flood of commands to one gateway
# cannot pile up tasks waiting on its stations.
DEFAULT_MAX_IN_FLIGHT = 1_000
# The body of that refusal. A failed answer's body is otherwise the name of an
# exception, an identifier, which this can never be.
OVERLOADED = b"!overloaded"
MAX_SUBJECT_LENGTH = 200
# Dot-separated tokens of letters, digits, "-" and "_"; no wildcards, because
# Redis channels and NATS subjects must mean the same thing.
_SUBJECT = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
# Subjects of the bus itself (reply channels) start with this.
RESERVED_PREFIX = "_"


class BusError(Exception):
    """Base of every error the bus raises."""


class BusUnavailable(BusError):
    """The broker cannot be reached, or the bus is closed: nothing was sent."""


class NoResponders(BusError):
    """Nobody serves the subject: the request was not delivered."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"Nobody serves {subject!r}.")
        self.subject = subject


class BusTimeout(BusError):
    """No answer in time: the request may or may not have been handled."""


class ResponderFailed(BusError):
    """The request was delivered, and its responder raised instead of answering."""


class ResponderBusy(BusError):
    """The responder had too many requests in progress: this one was not handled."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"The responder on {subject!r} is busy; nothing was done.")
        self.subject = subject


Handler = Callable[[bytes], Awaitable[None]]
Responder = Callable[[bytes], Awaitable[bytes]]


class Subscription(Protocol):
    """A registration made by ``subscribe`` or ``serve``."""

    @property
    def subject(self) -> str: ...

    async def cancel(self) -> None:
        """Stop deliveries (and cancel answers in progress); idempotent."""


class Bus(Protocol):
    """Fan-out events and request/reply between the processes of one CSMS.

    ``start`` before use, ``close`` at the end. Every message is delivered at
    most once; see docs/bus.md for what each transport guarantees.
    """

    name: str

    @property
    def connected(self) -> bool:
        """Whether the bus can carry messages now (False while reconnecting)."""

    async def start(self) -> None:
        """Connect; raises :class:`BusUnavailable` if the broker cannot be reached."""

    async def close(self) -> None:
        """Cancel every subscription and disconnect; idempotent."""

    async def publish(self, subject: str, data: bytes) -> None:
        """Send ``data`` to every current subscriber of ``subject``, if any."""

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        """Call ``handler`` with each message published on ``subject``.

        Once it returns (while connected), the broker knows the subscription.
        """

    async def serve(self, subject: str, responder: Responder) -> Subscription:
        """Answer each request on ``subject`` with what ``responder`` returns."""

    async def request(self, subject: str, data: bytes, *, timeout: float) -> bytes:
        """Send a request and wait for its answer.

        Raises :class:`NoResponders` (not delivered), :class:`BusTimeout`
        (delivered or unknown, no answer within ``timeout`` seconds),
        :class:`ResponderFailed` or :class:`BusUnavailable`.
        """


@dataclass(frozen=True, slots=True)
class Answer:
    """What a responder produced: its bytes, or the name of what it raised."""

    ok: bool
    body: bytes


def validate_subject(subject: str) -> str:
    """Return ``subject`` if every transport can carry it, else raise ValueError."""
    if (
        len(subject) > MAX_SUBJECT_LENGTH
        or subject.startswith(RESERVED_PREFIX)
        or _SUBJECT.fullmatch(subject) is None
    ):
        raise ValueError(
            f"Invalid bus subject {subject!r}: use dot-separated tokens of letters,"
            f" digits, '-' and '_', not starting with {RESERVED_PREFIX!r},"
            f" at most {MAX_SUBJECT_LENGTH} characters."
        )
    return subject


async def run_responder(responder: Responder, data: bytes, *, subject: str) -> Answer:
    """Run a responder; what it raises becomes a failed answer, logged as our bug."""
    try:
        body = await responder(data)
    except Exception as exc:
        logger.exception("bus.responder.failed", subject=subject)
        return Answer(ok=False, body=type(exc).__name__.encode())
    return Answer(ok=True, body=body)


OVERLOADED_ANSWER = Answer(ok=False, body=OVERLOADED)


def raise_failed(subject: str, answer: Answer) -> None:
    """Turn a failed answer into :class:`ResponderFailed` (or
    :class:`ResponderBusy`) for the requester."""
    if not answer.ok:
        if answer.body == OVERLOADED:
            raise ResponderBusy(subject)
        raised = answer.body.decode(errors="replace")
        raise ResponderFailed(f"The responder on {subject!r} raised {raised}.")


def is_being_cancelled() -> bool:
    """Whether the current task itself was asked to stop (not something it awaits)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class TaskSet:
    """Background tasks kept referenced until they end; a failure is logged."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self, coroutine: Coroutine[Any, Any, None], *, name: str
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "bus.task.failed", task=task.get_name(), exc_info=task.exception()
            )

    async def cancel_all(self) -> None:
        """Cancel every task and wait until they have all ended."""
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class InFlight:
    """A responder's requests in progress, at most ``limit`` of them."""

    def __init__(self, subject: str, limit: int) -> None:
        self.subject = subject
        self.limit = limit
        self.refused = 0
        self.tasks = TaskSet()
        self._refusing = False

    def start(self, coroutine: Coroutine[Any, Any, None]) -> bool:
        """Start answering a request; False (coroutine closed) when full."""
        if len(self.tasks) >= self.limit:
            coroutine.close()
            self.refused += 1
            # One warning per run of refusals, not one per request refused.
            if not self._refusing:
                logger.warning(
                    "bus.request.refused_busy",
                    subject=self.subject,
                    in_flight=len(self.tasks),
                    refused=self.refused,
                )
            self._refusing = True
            return False
        self._refusing = False
        self.tasks.spawn(coroutine, name=f"bus-respond-{self.subject}")
        return True


class Mailbox:
    """One subscription's queue and the task that hands its messages over in order."""

    def __init__(
        self,
        subject: str,
        handler: Handler,
        *,
        capacity: int = DEFAULT_MAILBOX_CAPACITY,
    ) -> None:
        self.subject = subject
        self.dropped = 0
        self._handler = handler
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=capacity)
        self._dropping = False
        self._task = asyncio.create_task(
            self._deliver_forever(), name=f"bus-mailbox-{subject}"
        )

    def offer(self, data: bytes) -> None:
        """Queue ``data`` for the handler; never blocks the caller (the reader)."""
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1
            # One warning per run of losses, not one per message lost.
            if not self._dropping:
                logger.warning(
                    "bus.delivery.dropped", subject=self.subject, dropped=self.dropped
                )
            self._dropping = True
        else:
            self._dropping = False

    async def close(self) -> None:
        """Stop: queued messages are discarded, a running handler is cancelled."""
        self._task.cancel()
        # A handler may cancel its own subscription; it cannot wait for itself.
        if self._task is not asyncio.current_task():
            await asyncio.gather(self._task, return_exceptions=True)

    async def _deliver_forever(self) -> None:
        while True:
            data = await self._queue.get()
            try:
                await self._handler(data)
            except Exception:
                logger.exception("bus.handler.failed", subject=self.subject)


class CallbackSubscription:
    """A :class:`Subscription` whose ``cancel`` runs ``on_cancel`` once."""

    def __init__(self, subject: str, on_cancel: Callable[[], Awaitable[None]]) -> None:
        self._subject = subject
        self._on_cancel = on_cancel
        self._cancelled = False

    @property
    def subject(self) -> str:
        return self._subject

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        await self._on_cancel()
