"""Roles in several processes, joined by the bus.

A gateway holds stations' sockets; the api and the worker do not. What crosses
between them:

- **links** (``<cluster>.stations.links``): a gateway announces each link it takes
  (station, gateway, owner epoch, OCPP version) and lets go. Every process keeps
  a map of who owns which station from it; a gateway that sees a newer epoch
  for a station it holds closes its stale link.
- **calls** (``<cluster>.gateway.<id>.call``): the api (or the worker) asks the
  owning gateway to send a CALL to a station and gets the station's answer, or
  the reason there is none. A request nobody takes means the gateway is gone:
  the station counts as not connected, at once, not after a timeout. A call
  carries its deadline (wall-clock time): a gateway that gets it too late, or
  whose turn to send comes too late, drops it unsent, so that a command never
  reaches a station after its caller was told it timed out. The processes'
  clocks must agree to well within ``CSMS_BUS_REQUEST_MARGIN`` (NTP does).
- **events** (``<cluster>.events``): what each process's event feed publishes
  (station changed, record changed) is relayed to the others, so that the
  operator dashboard served by the api shows what gateways see.

The database stays the truth: the owner and its epoch are stored with the
station (and written in the same transaction as the link), so a process that
starts late reads the owners from there and then follows the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.bus import (
    Bus,
    BusTimeout,
    BusUnavailable,
    NoResponders,
    ResponderBusy,
    ResponderFailed,
    Subscription,
)
from csms.events import Event, EventFeed
from csms.observability.metrics import Metrics
from csms.ocpp.calls import CallFailed, CallTimeout, StationNotConnected
from csms.ocpp.framing import CallError, ErrorKind, OcppVersion
from csms.ocpp.gateway import Gateway
from csms.ocpp.validation import SchemaViolation
from csms.stations.models import Station

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.cluster")

# Messages waiting to go out on the bus; beyond, new ones are dropped (counted).
ANNOUNCE_BACKLOG = 50_000
EVENT_BACKLOG = 10_000
# How long a stopping process keeps sending what waits.
STOP_GRACE = 5.0


class Role(StrEnum):
    GATEWAY = "gateway"
    API = "api"
    WORKER = "worker"
    ALL = "all"


def is_in_process(bus_url: str) -> bool:
    """Whether the bus URL names the in-process bus (no broker)."""
    return bus_url in ("", "memory://") or bus_url.startswith("memory:")


@dataclass(frozen=True, slots=True)
class Subjects:
    """The bus subjects of one cluster (``cluster_name``, "csms" by default)."""

    cluster: str = "csms"

    @property
    def links(self) -> str:
        return f"{self.cluster}.stations.links"

    @property
    def events(self) -> str:
        return f"{self.cluster}.events"

    def calls(self, gateway_id: str) -> str:
        return f"{self.cluster}.gateway.{gateway_id}.call"


@dataclass(frozen=True, slots=True)
class Owner:
    gateway: str
    epoch: int
    version: OcppVersion


class Outbox:
    """Messages to one subject, published one after another by one task.

    A burst (a connect storm's links, a page's worth of events) would otherwise
    wait on the bus's few connections all at once, and time out. Beyond
    ``capacity`` waiting messages, new ones are dropped and counted: what goes
    out here is a hint, never the only copy of the truth.
    """

    def __init__(
        self, bus: Bus, subject: str, *, capacity: int, failure_event: str
    ) -> None:
        self._bus = bus
        self._subject = subject
        self._failure_event = failure_event
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=capacity)
        self._sender: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self, name: str) -> None:
        self._sender = asyncio.create_task(self._send(), name=name)

    def offer(self, message: bytes) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1

    async def stop(self) -> None:
        """Send what waits (for up to ``STOP_GRACE``), then stop."""
        if self._sender is None:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        done, _ = await asyncio.wait({self._sender}, timeout=STOP_GRACE)
        if not done:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        self._sender = None

    async def _send(self) -> None:
        while (message := await self._queue.get()) is not None:
            try:
                await self._bus.publish(self._subject, message)
            except Exception as exc:
                self.dropped += 1
                logger.warning(self._failure_event, error=repr(exc))


class GatewayNode:
    """A gateway on the bus: answers calls for its stations, announces its
    links, and closes a link another gateway has taken since."""

    def __init__(self, gateway: Gateway, bus: Bus, *, subjects: Subjects) -> None:
        self._gateway = gateway
        self._bus = bus
        self._subjects = subjects
        self._subscriptions: list[Subscription] = []
        # Others still find a station's owner in the database; an announcement
        # only spares them the lookup.
        self._announcements = Outbox(
            bus,
            subjects.links,
            capacity=ANNOUNCE_BACKLOG,
            failure_event="cluster.link.announce_failed",
        )

    async def start(self) -> None:
        self._announcements.start("announce-links")
        self._subscriptions.append(
            await self._bus.serve(
                self._subjects.calls(self._gateway.gateway_id), self._answer_call
            )
        )
        self._subscriptions.append(
            await self._bus.subscribe(self._subjects.links, self._on_link_message)
        )

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.cancel()
        self._subscriptions.clear()
        # The links the gateway closed as it stopped go out first.
        await self._announcements.stop()

    def announce(
        self, station_id: str, version: OcppVersion | None, epoch: int
    ) -> None:
        """The gateway's link hook: publish that a link opened or closed."""
        message = orjson.dumps(
            {
                "station": station_id,
                "gateway": self._gateway.gateway_id,
                "epoch": epoch,
                "version": None if version is None else version.value,
            }
        )
        self._announcements.offer(message)

    async def _on_link_message(self, data: bytes) -> None:
        link = orjson.loads(data)
        if link["gateway"] == self._gateway.gateway_id or link["version"] is None:
            return
        self._gateway.taken_over(link["station"], int(link["epoch"]))

    async def _answer_call(self, data: bytes) -> bytes:
        request = orjson.loads(data)
        station_id = request["station"]
        action = request["action"]
        timeout = float(request["timeout"])
        if "deadline" in request:
            left = float(request["deadline"]) - time.time()
            if left <= 0:
                # The caller has given up (or is about to): nothing is sent.
                logger.warning(
                    "cluster.call.expired",
                    station_id=station_id,
                    action=action,
                    late_s=round(-left, 3),
                )
                return orjson.dumps({"error": "expired"})
            # A clock behind the caller's never gives more than was asked.
            # TODO: a clock ahead of the caller's by more than the timeout
            # expires every call; a skew measured on the bus would catch it.
            timeout = min(timeout, left)
        try:
            answer = await self._gateway.call(
                station_id,
                action,
                request["payload"],
                timeout=timeout,
                epoch=request.get("epoch"),
            )
        except StationNotConnected:
            return orjson.dumps({"error": "not_connected"})
        except CallTimeout:
            return orjson.dumps({"error": "timeout"})
        except CallFailed as exc:
            return orjson.dumps(
                {
                    "error": "call_error",
                    "code": exc.code,
                    "description": exc.description,
                }
            )
        except SchemaViolation as exc:
            return orjson.dumps(
                {
                    "error": "invalid",
                    "kind": exc.kind.value,
                    "description": exc.description,
                }
            )
        return orjson.dumps({"ok": answer})


class RemoteCommands:
    """Reaches stations through whichever gateway owns them, over the bus.

    The same face as the in-process gateway (``version_of`` and ``call``), for
    the api and the worker when the gateways run in other processes.
    """

    def __init__(
        self,
        bus: Bus,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        subjects: Subjects,
        margin: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._bus = bus
        self._subjects = subjects
        self._sessionmaker = sessionmaker
        self._margin = margin
        self._metrics = metrics
        self._owners: dict[str, Owner] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        # Follow the bus first, then read the database: a link announced in
        # between is seen by both, and the higher epoch wins either way.
        self._subscription = await self._bus.subscribe(
            self._subjects.links, self._on_link_message
        )
        async with self._sessionmaker() as session:
            rows = (
                await session.execute(
                    select(
                        Station.id,
                        Station.owner,
                        Station.owner_epoch,
                        Station.ocpp_version,
                    ).where(Station.online.is_(True), Station.owner.is_not(None))
                )
            ).all()
        for station_id, gateway, epoch, version in rows:
            if version is not None:
                owner = Owner(str(gateway), int(epoch), OcppVersion(version))
                self._learn(station_id, owner)
        logger.info("cluster.owners.loaded", stations=len(self._owners))

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None

    def owners(self) -> list[Owner]:
        return list(self._owners.values())

    def owner_of(self, station_id: str) -> Owner | None:
        return self._owners.get(station_id)

    def version_of(self, station_id: str) -> OcppVersion | None:
        owner = self._owners.get(station_id)
        return None if owner is None else owner.version

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        return await counting_failures(
            self._metrics,
            action,
            self._call(station_id, action, payload, timeout=timeout),
        )

    async def _call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None,
    ) -> dict[str, Any]:
        owner = self._owners.get(station_id)
        if owner is None:
            raise StationNotConnected(station_id)
        wait = timeout if timeout is not None else 30.0
        request = orjson.dumps(
            {
                "station": station_id,
                "epoch": owner.epoch,
                "action": action,
                "payload": payload,
                "timeout": wait,
                "deadline": time.time() + wait,
            }
        )
        try:
            data = await self._bus.request(
                self._subjects.calls(owner.gateway),
                request,
                timeout=wait + self._margin,
            )
        except NoResponders as exc:
            # The gateway is gone; its stations reconnect elsewhere.
            self._forget(station_id, owner)
            raise StationNotConnected(station_id) from exc
        except BusTimeout as exc:
            raise CallTimeout(action, wait) from exc
        except ResponderBusy as exc:
            # Refused unsent: a clear failure now rather than a timeout later.
            logger.warning(
                "cluster.call.gateway_busy", action=action, gateway=owner.gateway
            )
            raise CallFailed(
                action,
                CallError(
                    message_id="",
                    code="GatewayBusy",
                    description="the station's gateway has too many calls in "
                    "progress; nothing was sent",
                    details={},
                ),
            ) from exc
        except BusUnavailable as exc:
            # TODO: the caller hears "not connected" while the broker is down;
            # a distinct 503 would tell an operator the truth sooner.
            logger.warning("cluster.call.bus_unavailable", action=action)
            raise StationNotConnected(station_id) from exc
        except ResponderFailed as exc:
            # Our own bug on the gateway (its log has the traceback).
            logger.error("cluster.call.gateway_failed", action=action, error=str(exc))
            raise CallFailed(
                action,
                CallError(
                    message_id="",
                    code="InternalError",
                    description="the gateway failed",
                    details={},
                ),
            ) from exc
        answer = orjson.loads(data)
        if "ok" in answer:
            return dict(answer["ok"])
        error = answer.get("error")
        if error in ("timeout", "expired"):
            raise CallTimeout(action, wait)
        if error == "call_error":
            raise CallFailed(
                action,
                CallError(
                    message_id="",
                    code=str(answer.get("code", "")),
                    description=str(answer.get("description", "")),
                    details={},
                ),
            )
        if error == "invalid":
            raise SchemaViolation(
                ErrorKind(answer["kind"]), str(answer.get("description", ""))
            )
        raise StationNotConnected(station_id)

    async def _on_link_message(self, data: bytes) -> None:
        link = orjson.loads(data)
        station_id = link["station"]
        epoch = int(link["epoch"])
        if link["version"] is None:
            current = self._owners.get(station_id)
            if current is not None and current.epoch <= epoch:
                del self._owners[station_id]
            return
        self._learn(
            station_id, Owner(link["gateway"], epoch, OcppVersion(link["version"]))
        )

    def _learn(self, station_id: str, owner: Owner) -> None:
        current = self._owners.get(station_id)
        if current is None or current.epoch <= owner.epoch:
            self._owners[station_id] = owner

    def _forget(self, station_id: str, owner: Owner) -> None:
        if self._owners.get(station_id) == owner:
            del self._owners[station_id]


async def counting_failures(
    metrics: Metrics | None, action: str, call: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    """Await a call to a station; a failure is counted by its reason, then raised."""
    try:
        return await call
    except (CallTimeout, CallFailed, StationNotConnected) as exc:
        if metrics is not None:
            metrics.count_station_call_failure(action, failure_reason(exc))
        raise


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, CallTimeout):
        return "timeout"
    if isinstance(exc, CallFailed):
        return "call_error"
    return "not_connected"


class EventRelay:
    """Carries this process's events to the others, and theirs into its feed."""

    def __init__(
        self, events: EventFeed, bus: Bus, *, subjects: Subjects, receive: bool
    ) -> None:
        self._events = events
        self._bus = bus
        self._subject = subjects.events
        self._receive = receive
        self._origin = uuid.uuid4().hex
        # Events this relay puts into the feed must not be sent back out.
        self._injecting = False
        # Pages refetch on reconnect; an event is a hint, never the truth.
        self._outbox = Outbox(
            bus,
            subjects.events,
            capacity=EVENT_BACKLOG,
            failure_event="cluster.event.relay_failed",
        )
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._events.add_listener(self._on_local_event)
        self._outbox.start("event-relay")
        if self._receive:
            self._subscription = await self._bus.subscribe(
                self._subject, self._on_remote_event
            )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()
        await self._outbox.stop()

    def _on_local_event(self, event: Event) -> None:
        if self._injecting:
            return
        message = orjson.dumps(
            {"origin": self._origin, "kind": event.kind, "data": event.data}
        )
        self._outbox.offer(message)

    @property
    def dropped(self) -> int:
        return self._outbox.dropped

    async def _on_remote_event(self, data: bytes) -> None:
        message = orjson.loads(data)
        if message.get("origin") == self._origin:
            return
        self._injecting = True
        try:
            self._events.publish(Event(kind=message["kind"], data=message["data"]))
        finally:
            self._injecting = False
