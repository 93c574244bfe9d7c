"""Baseline: a bare WebSocket server that answers every OCPP CALL, and nothing else.

    .venv/bin/python benchmarks/baselines/echo_server.py --port 9100 [--processes 2]

It accepts any ``/ocpp/<id>`` path offering ``ocpp1.6`` or ``ocpp2.0.1``,
ignores credentials, and answers each CALL with a CALLRESULT of the shape the
load generator reads (a boot Accepted with an interval, a transaction id for a
1.6 StartTransaction, an empty object otherwise). No validation, no
persistence, no state: what is left is the cost of the sockets and the
WebSocket framing, the floor under any central system written on
``websockets``. Connections use the gateway's settings: no compression, no
library pings, no server header.

With ``--processes N`` it forks N servers sharing the port (SO_REUSEPORT); the
kernel spreads connections between them. It runs until SIGTERM or Ctrl-C, or
``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from datetime import UTC, datetime

from serving import (
    accept_ocpp_paths,
    run_forked,
    run_loop,
    select_subprotocol,
    wait_until_stopped,
)
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def parse_call_head(raw: str) -> tuple[str, str] | None:
    """The message id and action of a CALL, found without decoding the payload.

    A CALL reads ``[2,"<id>","<action>",{…}]``; ids and actions never hold a
    quote. Anything else (a CALLRESULT, a malformed frame) gives None.
    """
    head = raw[:200].lstrip("[ \t\r\n")
    if not head.startswith("2"):
        return None
    first = head.find('"')
    second = head.find('"', first + 1)
    third = head.find('"', second + 1)
    fourth = head.find('"', third + 1)
    if min(first, second, third, fourth) < 0:
        return None
    return head[first + 1 : second], head[third + 1 : fourth]


class Answers:
    """Canned CALLRESULT payloads, as JSON text, per action."""

    def __init__(self, *, heartbeat_interval: int) -> None:
        self._interval = heartbeat_interval
        self._transaction_ids = itertools.count(1)

    def payload(self, action: str) -> str:
        if action == "BootNotification":
            return (
                f'{{"status":"Accepted","currentTime":"{_now()}",'
                f'"interval":{self._interval}}}'
            )
        if action == "Heartbeat":
            return f'{{"currentTime":"{_now()}"}}'
        if action == "Authorize":
            return '{"idTagInfo":{"status":"Accepted"}}'
        if action == "StartTransaction":
            transaction_id = next(self._transaction_ids)
            return (
                f'{{"transactionId":{transaction_id},'
                '"idTagInfo":{"status":"Accepted"}}'
            )
        return "{}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def answer_station(socket: ServerConnection, answers: Answers) -> None:
    try:
        async for raw in socket:
            if not isinstance(raw, str):
                continue
            head = parse_call_head(raw)
            if head is None:
                continue
            message_id, action = head
            await socket.send(f'[3,"{message_id}",{answers.payload(action)}]')
    except ConnectionClosed:
        pass


async def run_server(
    *, host: str, port: int, heartbeat_interval: int, duration: float | None
) -> None:
    answers = Answers(heartbeat_interval=heartbeat_interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def handler(socket: ServerConnection) -> None:
        await answer_station(socket, answers)

    async with serve(
        handler,
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
        print(f"echo server {os.getpid()} on ws://{host}:{port}/ocpp", flush=True)
        await wait_until_stopped(stop, duration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--heartbeat-interval", type=int, default=180)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument(
        "--event-loop", choices=("asyncio", "uvloop"), default="asyncio"
    )
    arguments = parser.parse_args()
    run_forked(
        arguments.processes,
        lambda: run_loop(
            run_server(
                host=arguments.host,
                port=arguments.port,
                heartbeat_interval=arguments.heartbeat_interval,
                duration=arguments.duration,
            ),
            arguments.event_loop,
        ),
    )


if __name__ == "__main__":
    main()
