"""A simulated charging station, built on the ``ocpp`` package's charge points.

It connects with its id and password, boots, reports its connectors, heartbeats,
and answers remote start/stop by actually charging: a transaction opens, the
energy register rises at the configured power, and meter values go out at the
configured interval until the charge is stopped from the CSMS or the station.

Like a real station it does not depend on its link to charge. Transaction
messages (1.6 StartTransaction, MeterValues, StopTransaction; 2.0.1
TransactionEvent) go through an outbox delivered one at a time and in order:
one that gets no answer is sent again, after ``resend_timeout`` or on the next
connection. While the link is down the station keeps charging and queuing (2.0.1
events carry ``offline: true``), reconnects with a growing delay and then
delivers the queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog
import websockets
from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import ClientConnection

from csms.simulator.link import LinkDown, ReconnectingLink, backoff_delays

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.simulator")

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"


@dataclass
class SimulatorOptions:
    power_w: float = 11_000.0
    meter_interval: float = 10.0
    # Simulated seconds per real second: a demo charges an hour in a minute.
    time_factor: float = 1.0
    connectors: int = 2
    accept_remote_start: bool = True
    # False: accept remote starts but never begin the transaction.
    start_transactions: bool = True
    # Real seconds between accepting a remote start and the car drawing power.
    start_delay: float = 0.0
    heartbeat_interval: float | None = None
    # A transaction message unanswered for this long is sent again.
    resend_timeout: float = 10.0
    # A transaction message answered with a CALLERROR this often is dropped
    # (2.0.1 OCPPCommCtrlr.MessageAttempts; 1.6 TransactionMessageAttempts).
    message_attempts: int = 3
    reconnect: bool = True
    reconnect_delay: float = 0.1
    reconnect_delay_max: float = 5.0
    # Most stations resume without a new boot; some boot on every connection.
    boot_on_reconnect: bool = False


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Charge:
    connector_id: int
    id_token: str
    transaction_id: str | int | None = None
    meter_wh: float = 0.0
    seq_no: int = 0
    remote_start_id: int | None = None
    # Set once the charge's start is under way, before its transaction id is known.
    starting: bool = False
    task: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    meter_start_wh: int | None = None
    meter_stop_wh: int | None = None
    stop_reason: str | None = None
    # The CSMS refused its start, or never accepted its start message.
    start_failed: bool = False


@dataclass(eq=False)
class QueuedMessage:
    """A transaction message waiting to be delivered, with whom it concerns."""

    charge: Charge
    # Built at send time: a 1.6 message learns its transaction id only once the
    # StartTransaction before it in the queue has been answered.
    build: Callable[[], Any]
    answer: asyncio.Future[Any]
    # Runs as soon as the answer arrives, before the next message is built.
    on_answer: Callable[[Any], None] | None = None
    unique_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    errors: int = 0
    sends: int = 0


class _Charging:
    """What both protocol versions share: connectors, meter, outbox, charges."""

    options: SimulatorOptions
    link: ReconnectingLink
    charges: dict[int, Charge]
    meter_wh: dict[int, float]
    connector_status: dict[int, str]
    history: list[Charge]
    outbox: deque[QueuedMessage]
    tasks: set[asyncio.Task[Any]]
    on_event: Callable[[str, dict[str, Any]], None] | None
    call: Callable[..., Any]

    def _init_charging(self, link: ReconnectingLink, options: SimulatorOptions) -> None:
        self.options = options
        self.link = link
        self.charges = {}
        self.meter_wh = dict.fromkeys(range(1, options.connectors + 1), 0.0)
        self.connector_status = {}
        self.history = []
        self.outbox = deque()
        self._queued = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.tasks = set()
        self.on_event = None
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        # Every transaction message the CSMS acknowledged, in order.
        self.delivered: list[Any] = []

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("simulator.task.failed", error=repr(task.exception()))

    def _emit(self, event: str, **details: Any) -> None:
        if self.on_event is not None:
            self.on_event(event, details)

    async def _send_meter(self, charge: Charge) -> None:
        raise NotImplementedError

    async def _end_charge(self, charge: Charge, *, reason: str) -> None:
        raise NotImplementedError

    def charge_with(self, transaction_id: object) -> Charge | None:
        for charge in self.charges.values():
            if charge.transaction_id == transaction_id:
                return charge
        return None

    async def stop_locally(self, connector_id: int = 1) -> None:
        """The driver ends the charge at the station."""
        await self._end_charge(self.charges[connector_id], reason="Local")

    async def _stop_metering(self, charge: Charge, *, reason: str) -> bool:
        """Stop the meter loop; False when the charge is already ending."""
        if charge.stop_reason is not None:
            return False
        charge.stop_reason = reason
        charge.stopping.set()
        if charge.task is not None:
            await asyncio.gather(charge.task, return_exceptions=True)
        return True

    async def send_statuses(self) -> None:
        raise NotImplementedError

    @property
    def online(self) -> bool:
        return self.link.online

    def cut_link(self) -> None:
        """Drop the link abruptly (a test's broken cable); it reconnects by itself."""
        self.link.cut()

    async def call_now(self, payload: Any) -> Any:
        """Send a message that is not queued; LinkDown when there is no link."""
        return await self.link.while_up(self.call(payload))

    async def _try_call(self, payload: Any) -> Any:
        # Status and heartbeat are not queued: the CSMS asks for the current
        # statuses when the station comes back (TriggerMessage).
        try:
            return await self.call_now(payload)
        except (LinkDown, TimeoutError, websockets.ConnectionClosed):
            return None

    def free_connector(self, requested: int | None) -> int | None:
        candidates = [requested] if requested else sorted(self.meter_wh)
        for connector_id in candidates:
            if connector_id in self.meter_wh and connector_id not in self.charges:
                return connector_id
        return None

    # -- the outbox ----------------------------------------------------------------

    def _enqueue(
        self,
        charge: Charge,
        build: Callable[[], Any],
        *,
        on_answer: Callable[[Any], None] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue a transaction message; the future resolves with its answer
        (None if the CSMS kept refusing it and it was dropped)."""
        message = QueuedMessage(
            charge=charge,
            build=build,
            answer=asyncio.get_running_loop().create_future(),
            on_answer=on_answer,
        )
        self.outbox.append(message)
        self._queued.set()
        self._drained.clear()
        return message.answer

    def queued_for(self, transaction_id: str | int) -> bool:
        return any(m.charge.transaction_id == transaction_id for m in self.outbox)

    async def drained(self) -> None:
        """Wait until every queued transaction message has been answered."""
        await self._drained.wait()

    async def _deliver(self) -> None:
        """Send the outbox in order, one message at a time, until answered."""
        while True:
            await self._queued.wait()
            if not self.outbox:
                self._queued.clear()
                self._drained.set()
                continue
            await self.link.wait_up()
            message = self.outbox[0]
            payload = message.build()
            if payload is None:
                self._settle(message, None)
                continue
            message.sends += 1
            if message.sends > 1:
                self._emit("resent", action=type(payload).__name__)
            try:
                answer = await self.link.while_up(
                    self.call(payload, suppress=False, unique_id=message.unique_id),
                    timeout=self.options.resend_timeout,
                )
            except (LinkDown, TimeoutError, websockets.ConnectionClosed):
                # Unanswered: sent again, on this link after the timeout or on
                # the next one.
                continue
            except OCPPError as exc:
                message.errors += 1
                if message.errors < self.options.message_attempts:
                    continue
                logger.warning(
                    "simulator.message.dropped",
                    action=type(payload).__name__,
                    error=repr(exc),
                )
                self._emit("dropped", action=type(payload).__name__)
                self._settle(message, None)
                continue
            self.delivered.append(payload)
            self._settle(message, answer)

    def _settle(self, message: QueuedMessage, answer: Any) -> None:
        self.outbox.popleft()
        if message.on_answer is not None:
            message.on_answer(answer)
        if not message.answer.done():
            message.answer.set_result(answer)

    async def _meter_loop(self, charge: Charge) -> None:
        """Raise the register at the configured power; report every interval."""
        options = self.options
        real_interval = options.meter_interval / options.time_factor
        while not charge.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(charge.stopping.wait(), real_interval)
            added = options.power_w * options.meter_interval / 3600
            if charge.stopping.is_set():
                break
            charge.meter_wh += added
            self.meter_wh[charge.connector_id] = charge.meter_wh
            await self._send_meter(charge)


class SimulatedStation16(_Charging, ChargePoint16):  # type: ignore[misc]
    def __init__(
        self, station_id: str, connection: ReconnectingLink, options: SimulatorOptions
    ):
        super().__init__(station_id, connection, response_timeout=30)
        self._init_charging(connection, options)

    async def boot(self) -> int:
        answer = await self.call_now(
            call16.BootNotification(
                charge_point_vendor="CSMS-Sim",
                charge_point_model="Sim-16",
                firmware_version="1.0",
            )
        )
        for connector_id in [0, *sorted(self.meter_wh)]:
            await self.status(connector_id, "Available")
        return int(answer.interval)

    async def status(self, connector_id: int, status: str) -> None:
        self.connector_status[connector_id] = status
        await self._try_call(
            call16.StatusNotification(
                connector_id=connector_id, error_code="NoError", status=status
            )
        )
        self._emit("status", connector_id=connector_id, status=status)

    async def send_statuses(self) -> None:
        # Read each status when it is sent: a charge may change one meanwhile.
        for connector_id in sorted(self.connector_status):
            await self.status(connector_id, self.connector_status[connector_id])

    async def heartbeat(self) -> None:
        await self._try_call(call16.Heartbeat())

    @on(Action16.remote_start_transaction)
    def _on_remote_start(
        self, id_tag: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        free = self.free_connector(connector_id)
        accepted = self.options.accept_remote_start and free is not None
        self._emit(
            "remote_start",
            connector_id=connector_id,
            id_token=id_tag,
            accepted=accepted,
        )
        if not accepted or free is None:
            return result16.RemoteStartTransaction(status="Rejected")
        self.charges[free] = Charge(
            connector_id=free, id_token=id_tag, meter_wh=self.meter_wh[free]
        )
        return result16.RemoteStartTransaction(status="Accepted")

    @after(Action16.remote_start_transaction)
    def _after_remote_start(self, id_tag: str, **_: Any) -> None:
        # The token alone does not name the charge: the same token may have
        # another charge on its way whose transaction id is not known yet.
        for charge in self.charges.values():
            if charge.id_token == id_tag and not charge.starting:
                charge.starting = True
                if self.options.start_transactions:
                    self._spawn(self.start_charge(charge))
                return

    async def start_charge(self, charge: Charge) -> None:
        await self.status(charge.connector_id, "Preparing")
        if self.options.start_delay:
            await asyncio.sleep(self.options.start_delay)
        meter_start = round(charge.meter_wh)
        charge.meter_start_wh = meter_start
        timestamp = now_iso()

        def remember_id(answer: Any) -> None:
            # Before the next queued message is built: it needs this id.
            if answer is None:
                charge.start_failed = True
            else:
                charge.transaction_id = int(answer.transaction_id)

        answered = self._enqueue(
            charge,
            lambda: call16.StartTransaction(
                connector_id=charge.connector_id,
                id_tag=charge.id_token,
                meter_start=meter_start,
                timestamp=timestamp,
            ),
            on_answer=remember_id,
        )
        # The car charges from now on, answered or not: the meter values queue
        # behind the start.
        charge.task = self._spawn(self._meter_loop(charge))
        answer = await answered
        status = "Invalid" if answer is None else answer.id_tag_info["status"]
        self._emit(
            "start_answered", transaction_id=charge.transaction_id, status=status
        )
        if status != "Accepted":
            charge.start_failed = answer is None
            await self._end_charge(charge, reason="DeAuthorized")
            return
        await self.status(charge.connector_id, "Charging")
        self._emit("started", transaction_id=charge.transaction_id)
        self.started.set()

    async def plug_in_and_charge(self, id_token: str, connector_id: int = 1) -> Charge:
        """A driver holds an RFID card to the reader: a local start."""
        charge = Charge(
            connector_id=connector_id,
            id_token=id_token,
            meter_wh=self.meter_wh[connector_id],
            starting=True,
        )
        self.charges[connector_id] = charge
        await self.start_charge(charge)
        return charge

    async def _send_meter(self, charge: Charge) -> None:
        wh = round(charge.meter_wh)
        timestamp = now_iso()

        def build() -> Any:
            if charge.transaction_id is None:
                return None
            return call16.MeterValues(
                connector_id=charge.connector_id,
                transaction_id=charge.transaction_id,
                meter_value=[
                    {
                        "timestamp": timestamp,
                        "sampledValue": [
                            {
                                "value": str(wh),
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                                "context": "Sample.Periodic",
                            }
                        ],
                    }
                ],
            )

        self._enqueue(charge, build)
        self._emit("meter", wh=wh)

    @on(Action16.remote_stop_transaction)
    def _on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        known = self.charge_with(transaction_id) is not None
        return result16.RemoteStopTransaction(
            status="Accepted" if known else "Rejected"
        )

    @after(Action16.remote_stop_transaction)
    def _after_remote_stop(self, transaction_id: int, **_: Any) -> None:
        charge = self.charge_with(transaction_id)
        if charge is not None:
            self._spawn(self._end_charge(charge, reason="Remote"))

    async def _end_charge(self, charge: Charge, *, reason: str) -> None:
        if not await self._stop_metering(charge, reason=reason):
            return
        meter_stop = round(charge.meter_wh)
        charge.meter_stop_wh = meter_stop
        timestamp = now_iso()
        self.charges.pop(charge.connector_id, None)
        self.connector_status[charge.connector_id] = "Available"
        self.history.append(charge)

        def build() -> Any:
            if charge.transaction_id is None:
                return None
            return call16.StopTransaction(
                meter_stop=meter_stop,
                timestamp=timestamp,
                transaction_id=charge.transaction_id,
                reason=reason,
                id_tag=charge.id_token,
            )

        await self._enqueue(charge, build)
        await self.status(charge.connector_id, "Finishing")
        await self.status(charge.connector_id, "Available")
        self._emit("finished", transaction_id=charge.transaction_id, reason=reason)
        self.finished.set()

    @on(Action16.change_availability)
    def _on_change_availability(self, **_: Any) -> Any:
        return result16.ChangeAvailability(status="Accepted")

    @on(Action16.trigger_message)
    def _on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        self._emit("trigger", requested_message=requested_message)
        return result16.TriggerMessage(status="Accepted")

    @after(Action16.trigger_message)
    def _after_trigger_message(self, requested_message: str, **_: Any) -> None:
        if requested_message == "StatusNotification":
            self._spawn(self.send_statuses())
        elif requested_message == "Heartbeat":
            self._spawn(self.heartbeat())


class SimulatedStation201(_Charging, ChargePoint201):  # type: ignore[misc]
    def __init__(
        self, station_id: str, connection: ReconnectingLink, options: SimulatorOptions
    ):
        super().__init__(station_id, connection, response_timeout=30)
        self._init_charging(connection, options)

    async def boot(self) -> int:
        answer = await self.call_now(
            call201.BootNotification(
                charging_station={
                    "vendor_name": "CSMS-Sim",
                    "model": "Sim-201",
                    "firmware_version": "1.0",
                },
                reason="PowerUp",
            )
        )
        for connector_id in sorted(self.meter_wh):
            await self.status(connector_id, "Available")
        return int(answer.interval)

    async def status(self, evse_id: int, status: str) -> None:
        self.connector_status[evse_id] = status
        await self._try_call(
            call201.StatusNotification(
                timestamp=now_iso(),
                connector_status=status,
                evse_id=evse_id,
                connector_id=1,
            )
        )
        self._emit("status", evse_id=evse_id, status=status)

    async def send_statuses(self) -> None:
        for evse_id in sorted(self.connector_status):
            await self.status(evse_id, self.connector_status[evse_id])

    async def heartbeat(self) -> None:
        await self._try_call(call201.Heartbeat())

    @on(Action201.request_start_transaction)
    def _on_request_start(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        **_: Any,
    ) -> Any:
        free = self.free_connector(evse_id)
        accepted = self.options.accept_remote_start and free is not None
        self._emit(
            "remote_start",
            evse_id=evse_id,
            id_token=id_token,
            remote_start_id=remote_start_id,
            accepted=accepted,
        )
        if not accepted or free is None:
            return result201.RequestStartTransaction(status="Rejected")
        charge = Charge(
            connector_id=free,
            id_token=id_token["id_token"],
            meter_wh=self.meter_wh[free],
            remote_start_id=remote_start_id,
            transaction_id=uuid.uuid4().hex[:20],
        )
        self.charges[free] = charge
        return result201.RequestStartTransaction(
            status="Accepted", transaction_id=charge.transaction_id
        )

    @after(Action201.request_start_transaction)
    def _after_request_start(self, remote_start_id: int, **_: Any) -> None:
        for charge in self.charges.values():
            if charge.remote_start_id == remote_start_id and not charge.starting:
                charge.starting = True
                if self.options.start_transactions:
                    self._spawn(self.start_charge(charge, trigger="RemoteStart"))
                return

    async def start_charge(self, charge: Charge, *, trigger: str) -> None:
        await self.status(charge.connector_id, "Occupied")
        if self.options.start_delay:
            await asyncio.sleep(self.options.start_delay)
        charge.meter_start_wh = round(charge.meter_wh)
        info: dict[str, Any] = {
            "transaction_id": charge.transaction_id,
            "charging_state": "Charging",
        }
        if charge.remote_start_id is not None:
            info["remote_start_id"] = charge.remote_start_id
        answered = self._event(
            charge,
            "Started",
            trigger,
            info,
            context="Transaction.Begin",
            # A remote start echoes the CSMS's Central token; a local start
            # presents the RFID card that was held to the reader.
            id_token={
                "id_token": charge.id_token,
                "type": "Central" if charge.remote_start_id is not None else "ISO14443",
            },
        )
        charge.task = self._spawn(self._meter_loop(charge))
        answer = await answered
        if answer is None:
            status = "Invalid"
        else:
            status = (answer.id_token_info or {}).get("status", "Accepted")
        self._emit(
            "start_answered", transaction_id=charge.transaction_id, status=status
        )
        if status != "Accepted":
            await self._end_charge(charge, reason="DeAuthorized")
            return
        self._emit("started", transaction_id=charge.transaction_id)
        self.started.set()

    async def plug_in_and_charge(self, id_token: str, connector_id: int = 1) -> Charge:
        charge = Charge(
            connector_id=connector_id,
            id_token=id_token,
            meter_wh=self.meter_wh[connector_id],
            transaction_id=uuid.uuid4().hex[:20],
            starting=True,
        )
        self.charges[connector_id] = charge
        await self.start_charge(charge, trigger="Authorized")
        return charge

    def _event(
        self,
        charge: Charge,
        event_type: str,
        trigger: str,
        info: dict[str, Any],
        *,
        context: str,
        id_token: dict[str, Any] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue a TransactionEvent, numbered and stamped when it happens."""
        seq_no = charge.seq_no
        charge.seq_no += 1
        timestamp = now_iso()
        payload = call201.TransactionEvent(
            event_type=event_type,
            timestamp=timestamp,
            trigger_reason=trigger,
            seq_no=seq_no,
            transaction_info=info,
            evse={"id": charge.connector_id, "connector_id": 1},
            id_token=id_token,
            # E04.FR.01..03: an event that happened without a link says so.
            offline=True if not self.link.online else None,
            meter_value=[
                {
                    "timestamp": timestamp,
                    "sampled_value": [
                        {
                            "value": round(charge.meter_wh),
                            "measurand": "Energy.Active.Import.Register",
                            "context": context,
                            "unit_of_measure": {"unit": "Wh"},
                        }
                    ],
                }
            ],
        )
        return self._enqueue(charge, lambda: payload)

    async def _send_meter(self, charge: Charge) -> None:
        self._event(
            charge,
            "Updated",
            "MeterValuePeriodic",
            {"transaction_id": charge.transaction_id, "charging_state": "Charging"},
            context="Sample.Periodic",
        )
        self._emit("meter", wh=round(charge.meter_wh))

    @on(Action201.request_stop_transaction)
    def _on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        known = self.charge_with(transaction_id) is not None
        return result201.RequestStopTransaction(
            status="Accepted" if known else "Rejected"
        )

    @after(Action201.request_stop_transaction)
    def _after_request_stop(self, transaction_id: str, **_: Any) -> None:
        charge = self.charge_with(transaction_id)
        if charge is not None:
            self._spawn(self._end_charge(charge, reason="Remote"))

    async def _end_charge(self, charge: Charge, *, reason: str) -> None:
        if not await self._stop_metering(charge, reason=reason):
            return
        charge.meter_stop_wh = round(charge.meter_wh)
        self.charges.pop(charge.connector_id, None)
        self.connector_status[charge.connector_id] = "Available"
        self.history.append(charge)
        await self._event(
            charge,
            "Ended",
            "RemoteStop" if reason == "Remote" else "StopAuthorized",
            {
                "transaction_id": charge.transaction_id,
                "charging_state": "Idle",
                "stopped_reason": reason,
            },
            context="Transaction.End",
        )
        await self.status(charge.connector_id, "Available")
        self._emit("finished", transaction_id=charge.transaction_id, reason=reason)
        self.finished.set()

    @on(Action201.change_availability)
    def _on_change_availability(self, **_: Any) -> Any:
        return result201.ChangeAvailability(status="Accepted")

    @on(Action201.trigger_message)
    def _on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        self._emit("trigger", requested_message=requested_message)
        return result201.TriggerMessage(status="Accepted")

    @after(Action201.trigger_message)
    def _after_trigger_message(self, requested_message: str, **_: Any) -> None:
        if requested_message == "StatusNotification":
            self._spawn(self.send_statuses())
        elif requested_message == "Heartbeat":
            self._spawn(self.heartbeat())

    @on(Action201.get_transaction_status)
    def _on_get_transaction_status(
        self, transaction_id: str | None = None, **_: Any
    ) -> Any:
        # D14 (E14.FR.01..06): whether the transaction still runs here, and
        # whether messages about it still wait to be delivered.
        self._emit("transaction_status_asked", transaction_id=transaction_id)
        if transaction_id is None:
            return result201.GetTransactionStatus(messages_in_queue=bool(self.outbox))
        ongoing = any(
            charge.transaction_id == transaction_id for charge in self.charges.values()
        )
        return result201.GetTransactionStatus(
            messages_in_queue=self.queued_for(transaction_id),
            ongoing_indicator=ongoing,
        )


SimulatedStation = SimulatedStation16 | SimulatedStation201


@contextlib.asynccontextmanager
async def run_station(
    ocpp_url: str | Sequence[str],
    station_id: str,
    password: str,
    *,
    version: str = V16,
    options: SimulatorOptions | None = None,
    boot: bool = True,
) -> Any:
    """Connect a simulated station, boot it, keep it heartbeating and connected;
    yield it. The first connection's failure is raised; later ones are retried.

    Several URLs are tried in turn, as a station falls back to its next
    network profile: each failed attempt moves to the next one.
    """
    # Its own copy: a test may change one station's options as it runs.
    options = replace(options) if options else SimulatorOptions()
    credentials = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    urls = [ocpp_url] if isinstance(ocpp_url, str) else list(ocpp_url)
    link = ReconnectingLink(
        _Endpoints(
            [f"{url.rstrip('/')}/{station_id}" for url in urls],
            version=version,
            authorization=f"Basic {credentials}",
        )
    )
    await link.open()
    cls = SimulatedStation16 if version == V16 else SimulatedStation201
    station = cls(station_id, link, options)
    background = [
        asyncio.create_task(_read(station)),
        asyncio.create_task(station._deliver()),
        asyncio.create_task(_stay_connected(station, options, boot=boot)),
    ]
    try:
        if boot:
            interval = await station.boot()
            beat = options.heartbeat_interval or interval
            background.append(asyncio.create_task(_heartbeat(station, beat)))
        yield station
    finally:
        tasks = [*background, *station.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.close()


class _Endpoints:
    """Where the station connects: the current URL until it fails, then the next."""

    def __init__(self, urls: list[str], *, version: str, authorization: str) -> None:
        self._urls = urls
        self._version = version
        self._authorization = authorization
        self._current = 0

    async def __call__(self) -> ClientConnection:
        url = self._urls[self._current % len(self._urls)]
        try:
            return await _connect(
                url, version=self._version, authorization=self._authorization
            )
        except BaseException:
            self._current += 1
            raise


async def _connect(url: str, *, version: str, authorization: str) -> ClientConnection:
    return await websockets.connect(
        url,
        subprotocols=[version],  # type: ignore[list-item]
        additional_headers={"Authorization": authorization},
        open_timeout=30,
        # Pongs come from the library; the CSMS decides when to ping.
        ping_interval=None,
    )


async def _read(station: Any) -> None:
    # The link's recv waits across reconnections; a reply that fails because
    # the link just dropped ends one pass of the loop, not the station.
    while True:
        with contextlib.suppress(LinkDown, websockets.ConnectionClosed):
            await station.start()


async def _stay_connected(
    station: Any, options: SimulatorOptions, *, boot: bool
) -> None:
    link: ReconnectingLink = station.link
    while True:
        await link.wait_closed()
        if not options.reconnect:
            return
        station._emit("disconnected")
        lost_at = asyncio.get_running_loop().time()
        for delay in backoff_delays(
            options.reconnect_delay, options.reconnect_delay_max
        ):
            await asyncio.sleep(delay)
            if await link.reopen():
                break
        station._emit("reconnected", after=asyncio.get_running_loop().time() - lost_at)
        if boot and options.boot_on_reconnect:
            with contextlib.suppress(
                LinkDown, TimeoutError, websockets.ConnectionClosed
            ):
                await station.boot()


async def _heartbeat(station: Any, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await station.heartbeat()
