"""A simulated charging station, built on the ``ocpp`` package's charge points.

It connects with its id and password, boots, reports its connectors, heartbeats,
and answers remote start/stop by actually charging: a transaction opens, the
energy register rises at the configured power, and meter values go out at the
configured interval until the charge is stopped from the CSMS or the station.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

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
    heartbeat_interval: float | None = None


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


class _Charging:
    """What both protocol versions share: connectors, meter, charge tasks."""

    options: SimulatorOptions
    charges: dict[int, Charge]
    meter_wh: dict[int, float]
    tasks: set[asyncio.Task[Any]]
    on_event: Callable[[str, dict[str, Any]], None] | None

    def _init_charging(self, options: SimulatorOptions) -> None:
        self.options = options
        self.charges = {}
        self.meter_wh = dict.fromkeys(range(1, options.connectors + 1), 0.0)
        self.tasks = set()
        self.on_event = None
        self.started = asyncio.Event()
        self.finished = asyncio.Event()

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

    def free_connector(self, requested: int | None) -> int | None:
        candidates = [requested] if requested else sorted(self.meter_wh)
        for connector_id in candidates:
            if connector_id in self.meter_wh and connector_id not in self.charges:
                return connector_id
        return None

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
    def __init__(self, station_id: str, connection: Any, options: SimulatorOptions):
        super().__init__(station_id, connection, response_timeout=30)
        self._init_charging(options)

    async def boot(self) -> int:
        answer = await self.call(
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
        await self.call(
            call16.StatusNotification(
                connector_id=connector_id, error_code="NoError", status=status
            )
        )
        self._emit("status", connector_id=connector_id, status=status)

    async def heartbeat(self) -> None:
        await self.call(call16.Heartbeat())

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
        answer = await self.call(
            call16.StartTransaction(
                connector_id=charge.connector_id,
                id_tag=charge.id_token,
                meter_start=round(charge.meter_wh),
                timestamp=now_iso(),
            )
        )
        charge.transaction_id = int(answer.transaction_id)
        self._emit(
            "start_answered",
            transaction_id=charge.transaction_id,
            status=answer.id_tag_info["status"],
        )
        if answer.id_tag_info["status"] != "Accepted":
            await self._end_charge(charge, reason="DeAuthorized")
            return
        await self.status(charge.connector_id, "Charging")
        self._emit("started", transaction_id=charge.transaction_id)
        self.started.set()
        charge.task = self._spawn(self._meter_loop(charge))

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
        await self.call(
            call16.MeterValues(
                connector_id=charge.connector_id,
                transaction_id=charge.transaction_id,
                meter_value=[
                    {
                        "timestamp": now_iso(),
                        "sampledValue": [
                            {
                                "value": str(round(charge.meter_wh)),
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                                "context": "Sample.Periodic",
                            }
                        ],
                    }
                ],
            )
        )
        self._emit("meter", wh=round(charge.meter_wh))

    @on(Action16.remote_stop_transaction)
    def _on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        for charge in self.charges.values():
            if charge.transaction_id == transaction_id:
                return result16.RemoteStopTransaction(status="Accepted")
        return result16.RemoteStopTransaction(status="Rejected")

    @after(Action16.remote_stop_transaction)
    def _after_remote_stop(self, transaction_id: int, **_: Any) -> None:
        for charge in list(self.charges.values()):
            if charge.transaction_id == transaction_id:
                self._spawn(self._end_charge(charge, reason="Remote"))

    async def stop_locally(self, connector_id: int = 1) -> None:
        """The driver ends the charge at the station."""
        await self._end_charge(self.charges[connector_id], reason="Local")

    async def _end_charge(self, charge: Charge, *, reason: str) -> None:
        charge.stopping.set()
        if charge.task is not None:
            await asyncio.gather(charge.task, return_exceptions=True)
        await self.call(
            call16.StopTransaction(
                meter_stop=round(charge.meter_wh),
                timestamp=now_iso(),
                transaction_id=charge.transaction_id,
                reason=reason,
                id_tag=charge.id_token,
            )
        )
        self.charges.pop(charge.connector_id, None)
        await self.status(charge.connector_id, "Finishing")
        await self.status(charge.connector_id, "Available")
        self._emit("finished", transaction_id=charge.transaction_id, reason=reason)
        self.finished.set()

    @on(Action16.change_availability)
    def _on_change_availability(self, **_: Any) -> Any:
        return result16.ChangeAvailability(status="Accepted")

    @on(Action16.trigger_message)
    def _on_trigger_message(self, **_: Any) -> Any:
        return result16.TriggerMessage(status="Accepted")


class SimulatedStation201(_Charging, ChargePoint201):  # type: ignore[misc]
    def __init__(self, station_id: str, connection: Any, options: SimulatorOptions):
        super().__init__(station_id, connection, response_timeout=30)
        self._init_charging(options)

    async def boot(self) -> int:
        answer = await self.call(
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
        await self.call(
            call201.StatusNotification(
                timestamp=now_iso(),
                connector_status=status,
                evse_id=evse_id,
                connector_id=1,
            )
        )
        self._emit("status", evse_id=evse_id, status=status)

    async def heartbeat(self) -> None:
        await self.call(call201.Heartbeat())

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
            if charge.remote_start_id == remote_start_id and charge.seq_no == 0:
                if self.options.start_transactions:
                    self._spawn(self.start_charge(charge, trigger="RemoteStart"))
                return

    async def start_charge(self, charge: Charge, *, trigger: str) -> None:
        await self.status(charge.connector_id, "Occupied")
        info: dict[str, Any] = {
            "transaction_id": charge.transaction_id,
            "charging_state": "Charging",
        }
        if charge.remote_start_id is not None:
            info["remote_start_id"] = charge.remote_start_id
        answer = await self._event(
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
        status = (answer.id_token_info or {}).get("status", "Accepted")
        self._emit(
            "start_answered", transaction_id=charge.transaction_id, status=status
        )
        if status != "Accepted":
            await self._end_charge(charge, reason="DeAuthorized")
            return
        self._emit("started", transaction_id=charge.transaction_id)
        self.started.set()
        charge.task = self._spawn(self._meter_loop(charge))

    async def plug_in_and_charge(self, id_token: str, connector_id: int = 1) -> Charge:
        charge = Charge(
            connector_id=connector_id,
            id_token=id_token,
            meter_wh=self.meter_wh[connector_id],
            transaction_id=uuid.uuid4().hex[:20],
        )
        self.charges[connector_id] = charge
        await self.start_charge(charge, trigger="Authorized")
        return charge

    async def _event(
        self,
        charge: Charge,
        event_type: str,
        trigger: str,
        info: dict[str, Any],
        *,
        context: str,
        id_token: dict[str, Any] | None = None,
    ) -> Any:
        seq_no = charge.seq_no
        charge.seq_no += 1
        return await self.call(
            call201.TransactionEvent(
                event_type=event_type,
                timestamp=now_iso(),
                trigger_reason=trigger,
                seq_no=seq_no,
                transaction_info=info,
                evse={"id": charge.connector_id, "connector_id": 1},
                id_token=id_token,
                meter_value=[
                    {
                        "timestamp": now_iso(),
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
        )

    async def _send_meter(self, charge: Charge) -> None:
        await self._event(
            charge,
            "Updated",
            "MeterValuePeriodic",
            {"transaction_id": charge.transaction_id, "charging_state": "Charging"},
            context="Sample.Periodic",
        )
        self._emit("meter", wh=round(charge.meter_wh))

    @on(Action201.request_stop_transaction)
    def _on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        for charge in self.charges.values():
            if charge.transaction_id == transaction_id:
                return result201.RequestStopTransaction(status="Accepted")
        return result201.RequestStopTransaction(status="Rejected")

    @after(Action201.request_stop_transaction)
    def _after_request_stop(self, transaction_id: str, **_: Any) -> None:
        for charge in list(self.charges.values()):
            if charge.transaction_id == transaction_id:
                self._spawn(self._end_charge(charge, reason="Remote"))

    async def stop_locally(self, connector_id: int = 1) -> None:
        await self._end_charge(self.charges[connector_id], reason="Local")

    async def _end_charge(self, charge: Charge, *, reason: str) -> None:
        charge.stopping.set()
        if charge.task is not None:
            await asyncio.gather(charge.task, return_exceptions=True)
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
        self.charges.pop(charge.connector_id, None)
        await self.status(charge.connector_id, "Available")
        self._emit("finished", transaction_id=charge.transaction_id, reason=reason)
        self.finished.set()

    @on(Action201.change_availability)
    def _on_change_availability(self, **_: Any) -> Any:
        return result201.ChangeAvailability(status="Accepted")

    @on(Action201.trigger_message)
    def _on_trigger_message(self, **_: Any) -> Any:
        return result201.TriggerMessage(status="Accepted")


SimulatedStation = SimulatedStation16 | SimulatedStation201


@contextlib.asynccontextmanager
async def run_station(
    ocpp_url: str,
    station_id: str,
    password: str,
    *,
    version: str = V16,
    options: SimulatorOptions | None = None,
    boot: bool = True,
) -> Any:
    """Connect a simulated station, boot it, keep it heartbeating; yield it."""
    options = options or SimulatorOptions()
    credentials = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    socket = await websockets.connect(
        f"{ocpp_url.rstrip('/')}/{station_id}",
        subprotocols=[version],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Basic {credentials}"},
        open_timeout=30,
        # Pongs come from the library; the CSMS decides when to ping.
        ping_interval=None,
    )
    cls = SimulatedStation16 if version == V16 else SimulatedStation201
    station = cls(station_id, socket, options)
    reader = asyncio.create_task(_read(station))
    heartbeats: asyncio.Task[None] | None = None
    try:
        if boot:
            interval = await station.boot()
            beat = options.heartbeat_interval or interval
            heartbeats = asyncio.create_task(_heartbeat(station, beat))
        yield station
    finally:
        for task in [reader, heartbeats, *station.tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            reader,
            *(t for t in [heartbeats] if t),
            *station.tasks,
            return_exceptions=True,
        )
        await socket.close()


async def _read(station: Any) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        await station.start()


async def _heartbeat(station: Any, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await station.heartbeat()
