"""An in-process feed of what changed, for pages that watch live and for metrics.

The services publish after they commit — a station whose state changed, a
Charge Detail Record written — and whoever watches subscribes:

- a page (the operator dashboard's Server-Sent Events stream) iterates
  :meth:`EventFeed.subscribe`. Each subscriber has its own bounded queue; one
  that cannot keep up loses its *oldest* events, never blocks the publisher
  and never slows the other subscribers. A lost event is counted, and the page
  refetches what it shows when it reconnects;
- in-process listeners (metrics) are called synchronously inside
  :meth:`EventFeed.publish`, so they never miss anything.

``publish`` never awaits and never raises, so a service can call it right after
its commit without risking the answer it owes a station.

The feed is in-process: an ``api`` role split from the ``gateway`` role would
need it carried over the bus (see docs/limitations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from csms.charging.models import ChargeDetailRecord
    from csms.stations.models import Station

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.events")

# The feed is in-process; with roles split, csms.cluster.EventRelay carries
# it between processes over the bus (at most once).
# TODO: records that _finish_stale supersedes (charging/service.py) are not
# published; a page shows them changed only on its next refresh.
DEFAULT_QUEUE_SIZE = 256

STATION_CHANGED = "station.changed"
STATION_EVENT_RECORDED = "station.event_recorded"
CHARGE_CHANGED = "charge.changed"
CHARGES_EXPIRED = "charges.expired"


@dataclass(frozen=True, slots=True)
class Event:
    """One change: ``kind`` is a stable dotted name, ``data`` JSON-ready fields."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class _End:
    """Queued when the feed closes: the subscription ends there."""


_END = _End()


class _Subscription:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Event | _End] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, event: Event | _End) -> bool:
        """Queue ``event``; drop the oldest first when full. False if one was."""
        dropped = False
        while True:
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.queue.get_nowait()
                self.dropped += 1
                dropped = True
            else:
                return not dropped


class EventFeed:
    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subscriptions: set[_Subscription] = set()
        self._listeners: list[Listener] = []
        self._closed = False
        self.dropped = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every event, inside ``publish``; keep it quick."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("events.listener.failed", kind=event.kind)
        for subscription in self._subscriptions:
            if not subscription.offer(event):
                self.dropped += 1

    async def subscribe(
        self, *, idle: float | None = None
    ) -> AsyncGenerator[Event | None, None]:
        """Every event published from the first iteration on, until the feed
        closes; see :meth:`subscription` to be subscribed before that."""
        async with self.subscription(idle=idle) as events:
            async for event in events:
                yield event

    @contextlib.asynccontextmanager
    async def subscription(
        self, *, idle: float | None = None
    ) -> AsyncIterator[AsyncIterator[Event | None]]:
        """Subscribed on entry, unsubscribed on exit; iterate what it gives.

        With ``idle``, ``None`` comes when nothing happened for that many seconds
        (a page's stream sends a keep-alive then).
        """
        subscription = _Subscription(self._queue_size)
        if self._closed:
            subscription.offer(_END)
        else:
            self._subscriptions.add(subscription)
        try:
            yield _events_of(subscription, idle=idle)
        finally:
            self._subscriptions.discard(subscription)

    def close(self) -> None:
        """End every subscription: open streams finish, so the server can stop."""
        self._closed = True
        for subscription in self._subscriptions:
            # The end marker must get through even to a full queue.
            subscription.offer(_END)


async def _events_of(
    subscription: _Subscription, *, idle: float | None
) -> AsyncIterator[Event | None]:
    while True:
        try:
            async with asyncio.timeout(idle):
                event = await subscription.queue.get()
        except TimeoutError:
            yield None
            continue
        if isinstance(event, _End):
            return
        yield event


def station_changed(station: Station) -> Event:
    """A station's state, link or connectors changed (connectors must be loaded)."""
    return Event(
        STATION_CHANGED,
        {
            "station_id": station.id,
            "state": station.state,
            "online": station.online,
            "connectors": [
                {
                    "evse_id": connector.evse_id,
                    "connector_id": connector.connector_id,
                    "status": connector.status,
                }
                for connector in station.connectors
            ],
        },
    )


def station_event_recorded(
    station_id: str, kind: str, *, security: bool, details: dict[str, Any]
) -> Event:
    """An audit event was stored for a station (boot, failed authentication …)."""
    return Event(
        STATION_EVENT_RECORDED,
        {
            "station_id": station_id,
            "kind": kind,
            "security": security,
            "reason": details.get("reason"),
        },
    )


def charge_changed(record: ChargeDetailRecord) -> Event:
    """A Charge Detail Record was written; no token or customer in the event."""
    return Event(
        CHARGE_CHANGED,
        {
            "record_id": record.id,
            "station_id": record.station_id,
            "evse_id": record.evse_id,
            "connector_id": record.connector_id,
            "state": record.state,
            "energy_wh": record.energy_wh,
            "updated_at": _iso(record.updated_at),
        },
    )


def charge_failed(record_id: str) -> Event:
    """A Pending record turned Failed (its start was refused or went unanswered)."""
    return Event(CHARGE_CHANGED, {"record_id": record_id, "state": "Failed"})


def charges_expired(count: int) -> Event:
    """Pending records turned Failed in one sweep; their ids are not known."""
    return Event(CHARGES_EXPIRED, {"records": count})


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
