"""A call reaching a gateway over the bus carries its caller's deadline.

A gateway (a whole CSMS here, its bus a real broker) gets calls for a
connected station as another process would send them. One whose deadline has
passed is answered "expired" and never reaches the station; one in time is
sent and answered.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from csms.app import Csms
from csms.bus import connect_bus
from csms.cluster import Subjects
from csms.settings import Settings

from support.brokers import broker_url  # noqa: F401 (the bus_url fixture)
from support.clock import ManualClock
from support.station_calls import boot
from support.stations import connected_station

PASSWORD = "station-password-0001"


class ResettableStation(ChargePoint16):  # type: ignore[misc]
    """Answers Reset and remembers each one it got."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resets: list[dict[str, Any]] = []

    @on(Action.reset)
    def on_reset(self, **fields: Any) -> Any:
        self.resets.append(fields)
        return call_result.Reset(status="Accepted")


def _call(*, deadline: float) -> bytes:
    return orjson.dumps(
        {
            "station": "CP-1",
            "action": "Reset",
            "payload": {"type": "Soft"},
            "timeout": 5,
            "deadline": deadline,
        }
    )


async def test_a_call_past_its_deadline_never_reaches_the_station(
    settings: Settings, clock: ManualClock, bus_url: str
) -> None:
    cluster = f"t{uuid.uuid4().hex[:12]}"
    csms = Csms(
        settings.model_copy(update={"bus_url": bus_url, "cluster_name": cluster}),
        clock=clock,
    )
    await csms.start()
    requester = connect_bus(bus_url, client_name="csms-test")
    await requester.start()
    try:
        await csms.stations.register("CP-1", password=PASSWORD)
        subject = Subjects(cluster).calls(csms.gateway.gateway_id)
        async with connected_station(
            f"ws://127.0.0.1:{csms.ocpp_port}/ocpp",
            "CP-1",
            PASSWORD,
            charge_point_class=ResettableStation,
        ) as station:
            await boot(station)

            late = await requester.request(
                subject, _call(deadline=time.time() - 1), timeout=10
            )
            in_time = await requester.request(
                subject, _call(deadline=time.time() + 5), timeout=10
            )

            assert orjson.loads(late) == {"error": "expired"}
            assert orjson.loads(in_time) == {"ok": {"status": "Accepted"}}
            assert station.charge_point.resets == [{"type": "Soft"}]
    finally:
        await requester.close()
        await csms.stop()
