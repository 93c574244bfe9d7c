"""Baseline: a minimal central system on the `ocpp` package's own classes.

    .venv/bin/python benchmarks/baselines/ocpp_central.py --port 9200 [--processes 2]

One ``ocpp.v16.ChargePoint`` or ``ocpp.v201.ChargePoint`` per connection, with
``@on`` handlers that accept everything the load generator sends: boots,
heartbeats, status notifications, authorizations, transactions, meter values.
The package validates each payload against the official schemas (its default);
nothing is stored and nobody is authenticated (an Authorization header is
ignored). This is what a central system written the package's documented way
costs before it does any work of its own.

Sockets use the gateway's settings (no compression, no library pings). With
``--processes N`` it forks N servers sharing the port (SO_REUSEPORT). It runs
until SIGTERM or Ctrl-C, or ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16 import datatypes as datatypes16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as datatypes201
from ocpp.v201.enums import Action as Action201
from ocpp.v201.enums import AuthorizationStatusEnumType, RegistrationStatusEnumType
from serving import (
    accept_ocpp_paths,
    run_forked,
    run_loop,
    select_subprotocol,
    wait_until_stopped,
)
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

HEARTBEAT_INTERVAL = 180
_transaction_ids = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class CentralSystem16(ChargePoint16):  # type: ignore[misc]
    @on(Action16.boot_notification)
    async def on_boot(self, **_: Any) -> result16.BootNotification:
        return result16.BootNotification(
            current_time=_now(),
            interval=HEARTBEAT_INTERVAL,
            status=RegistrationStatus.accepted,
        )

    @on(Action16.heartbeat)
    async def on_heartbeat(self, **_: Any) -> result16.Heartbeat:
        return result16.Heartbeat(current_time=_now())

    @on(Action16.status_notification)
    async def on_status(self, **_: Any) -> result16.StatusNotification:
        return result16.StatusNotification()

    @on(Action16.authorize)
    async def on_authorize(self, **_: Any) -> result16.Authorize:
        return result16.Authorize(
            id_tag_info=datatypes16.IdTagInfo(status=AuthorizationStatus.accepted)
        )

    @on(Action16.start_transaction)
    async def on_start(self, **_: Any) -> result16.StartTransaction:
        return result16.StartTransaction(
            transaction_id=next(_transaction_ids),
            id_tag_info=datatypes16.IdTagInfo(status=AuthorizationStatus.accepted),
        )

    @on(Action16.meter_values)
    async def on_meter_values(self, **_: Any) -> result16.MeterValues:
        return result16.MeterValues()

    @on(Action16.stop_transaction)
    async def on_stop(self, **_: Any) -> result16.StopTransaction:
        return result16.StopTransaction()


class CentralSystem201(ChargePoint201):  # type: ignore[misc]
    @on(Action201.boot_notification)
    async def on_boot(self, **_: Any) -> result201.BootNotification:
        return result201.BootNotification(
            current_time=_now(),
            interval=HEARTBEAT_INTERVAL,
            status=RegistrationStatusEnumType.accepted,
        )

    @on(Action201.heartbeat)
    async def on_heartbeat(self, **_: Any) -> result201.Heartbeat:
        return result201.Heartbeat(current_time=_now())

    @on(Action201.status_notification)
    async def on_status(self, **_: Any) -> result201.StatusNotification:
        return result201.StatusNotification()

    @on(Action201.authorize)
    async def on_authorize(self, **_: Any) -> result201.Authorize:
        return result201.Authorize(
            id_token_info=datatypes201.IdTokenInfoType(
                status=AuthorizationStatusEnumType.accepted
            )
        )

    @on(Action201.transaction_event)
    async def on_transaction_event(self, **_: Any) -> result201.TransactionEvent:
        return result201.TransactionEvent()

    @on(Action201.meter_values)
    async def on_meter_values(self, **_: Any) -> result201.MeterValues:
        return result201.MeterValues()


async def serve_station(socket: ServerConnection) -> None:
    assert socket.request is not None
    station_id = socket.request.path.rsplit("/", 1)[-1]
    if socket.subprotocol == "ocpp2.0.1":
        central: ChargePoint16 | ChargePoint201 = CentralSystem201(station_id, socket)
    else:
        central = CentralSystem16(station_id, socket)
    with contextlib.suppress(ConnectionClosed):
        await central.start()


async def run_server(*, host: str, port: int, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        serve_station,
        host,
        port,
        process_request=accept_ocpp_paths,
        select_subprotocol=select_subprotocol,
        compression=None,
        max_size=64 * 1024,
        ping_interval=None,
        ping_timeout=None,
        close_timeout=5,
        server_header=None,
        reuse_port=True,
    ):
        print(f"ocpp central system {os.getpid()} on ws://{host}:{port}/ocpp")
        sys.stdout.flush()
        await wait_until_stopped(stop, duration)


def main() -> None:
    global HEARTBEAT_INTERVAL
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--heartbeat-interval", type=int, default=180)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument(
        "--event-loop", choices=("asyncio", "uvloop"), default="asyncio"
    )
    arguments = parser.parse_args()
    HEARTBEAT_INTERVAL = arguments.heartbeat_interval
    # The package logs every frame at INFO; a central system in production
    # would not, and the formatting is not what is being measured.
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    run_forked(
        arguments.processes,
        lambda: run_loop(
            run_server(
                host=arguments.host, port=arguments.port, duration=arguments.duration
            ),
            arguments.event_loop,
        ),
    )


if __name__ == "__main__":
    main()
