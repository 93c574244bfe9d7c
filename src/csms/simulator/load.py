"""``csms load``: drive many stations at a CSMS and measure how it answers.

Each worker process runs its share of the stations as light OCPP-J clients —
plain frames over ``websockets``, no charge-point framework — so that the
generator costs much less per station than the server it measures. Workers bind
their sockets to different loopback source addresses (127.0.0.2, .3, …) so that
one address's ephemeral ports never run out, and report back per-action latency
samples that the parent merges into percentiles.

Profile per station: connect (with a cap on handshakes in flight across the
worker), BootNotification, a StatusNotification per connector, then Heartbeats
at the interval, and — for a chosen share of stations — charges: Authorize,
StartTransaction, MeterValues every ``meter_interval``, StopTransaction.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import itertools
import multiprocessing
import os
import queue
import random
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"


@dataclass(frozen=True)
class LoadProfile:
    url: str
    duration: float = 60.0
    heartbeat_interval: float | None = None
    charging_share: float = 0.0
    meter_interval: float = 60.0
    charge_duration: float = 120.0
    max_handshakes: int = 200
    v201_share: float = 0.0
    connectors: int = 1


@dataclass
class WorkerReport:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    connected: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    connect_seconds: list[float] = field(default_factory=list)


def read_credentials(path: Path) -> list[tuple[str, str]]:
    """Read ``id,password`` rows, as ``csms station import`` writes them."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["id"], row["password"]) for row in csv.DictReader(handle)]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Client:
    """One station's socket: send a CALL, wait for its answer, time it."""

    def __init__(self, socket: ClientConnection, report: WorkerReport) -> None:
        self.socket = socket
        self.report = report
        self._counter = itertools.count()
        # OCPP-J allows one outstanding call per direction (1.6 section 4.1.1).
        self._turn = asyncio.Lock()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        async with self._turn:
            return await self._call(action, payload)

    async def _call(
        self, action: str, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        message_id = f"{next(self._counter):x}"
        started = time.perf_counter()
        await self.socket.send(orjson.dumps([2, message_id, action, payload]).decode())
        while True:
            raw = await self.socket.recv()
            frame = orjson.loads(raw)
            if frame[0] == 2:
                # A CALL from the CSMS (a ping-like trigger, a remote start):
                # answer it plainly so the CSMS is never left waiting.
                await self.socket.send(
                    orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode()
                )
                continue
            if frame[1] != message_id:
                continue
            elapsed = time.perf_counter() - started
            if frame[0] == 3:
                self.report.latencies[action].append(elapsed)
                result: dict[str, Any] = frame[2]
                return result
            self.report.errors[f"{action}:{frame[2]}"] += 1
            return None


async def _run_station(
    station_id: str,
    password: str,
    version: str,
    profile: LoadProfile,
    source: str,
    handshakes: asyncio.Semaphore,
    stop_at: float,
    report: WorkerReport,
) -> None:
    credentials = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    async with handshakes:
        started = time.perf_counter()
        try:
            socket = await websockets.connect(
                f"{profile.url.rstrip('/')}/{station_id}",
                subprotocols=[version],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {credentials}"},
                open_timeout=120,
                ping_interval=None,
                compression=None,
                local_addr=(source, 0),
            )
        except (OSError, websockets.InvalidHandshake, TimeoutError):
            report.connect_failures += 1
            return
        report.connect_seconds.append(time.perf_counter() - started)
    report.connected += 1
    client = _Client(socket, report)
    try:
        boot = await client.call(*_boot(version))
        interval = profile.heartbeat_interval or float(
            (boot or {}).get("interval", 180)
        )
        for connector in range(1, profile.connectors + 1):
            await client.call(*_status(version, connector, "Available"))
        charging = random.random() < profile.charging_share
        # Spread the first heartbeat over the interval, as a real fleet does.
        next_beat = time.monotonic() + random.uniform(0, interval)
        charge_task = (
            asyncio.create_task(_charge_loop(client, version, profile, stop_at))
            if charging
            else None
        )
        while time.monotonic() < stop_at:
            await asyncio.sleep(max(0.0, min(next_beat, stop_at) - time.monotonic()))
            if time.monotonic() >= stop_at:
                break
            await client.call("Heartbeat", {})
            next_beat += interval
        if charge_task is not None:
            await charge_task
    except websockets.ConnectionClosed:
        report.disconnects += 1
    finally:
        await socket.close()


async def _charge_loop(
    client: _Client, version: str, profile: LoadProfile, stop_at: float
) -> None:
    """Charge after charge on connector 1 until the run ends."""
    meter = 0
    token = uuid.uuid4().hex[:20].upper()
    await asyncio.sleep(random.uniform(0, profile.meter_interval))
    while time.monotonic() + profile.meter_interval < stop_at:
        if version == V16:
            await client.call("Authorize", {"idTag": token})
            started = await client.call(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": token,
                    "meterStart": meter,
                    "timestamp": now_iso(),
                },
            )
            transaction_id = (started or {}).get("transactionId", 0)
        else:
            transaction_id = uuid.uuid4().hex[:20]
            await client.call(*_event(transaction_id, "Started", 0, meter, token))
        ends = min(stop_at, time.monotonic() + profile.charge_duration)
        seq_no = 1
        while time.monotonic() + profile.meter_interval < ends:
            await asyncio.sleep(profile.meter_interval)
            meter += 1000
            if version == V16:
                await client.call(
                    "MeterValues",
                    {
                        "connectorId": 1,
                        "transactionId": transaction_id,
                        "meterValue": [
                            {
                                "timestamp": now_iso(),
                                "sampledValue": [{"value": str(meter), "unit": "Wh"}],
                            }
                        ],
                    },
                )
            else:
                await client.call(
                    *_event(transaction_id, "Updated", seq_no, meter, None)
                )
                seq_no += 1
        if version == V16:
            await client.call(
                "StopTransaction",
                {
                    "transactionId": transaction_id,
                    "meterStop": meter,
                    "timestamp": now_iso(),
                },
            )
        else:
            await client.call(*_event(transaction_id, "Ended", seq_no, meter, None))


def _boot(version: str) -> tuple[str, dict[str, Any]]:
    if version == V16:
        return "BootNotification", {
            "chargePointVendor": "Load",
            "chargePointModel": "L-16",
        }
    return "BootNotification", {
        "chargingStation": {"vendorName": "Load", "model": "L-201"},
        "reason": "PowerUp",
    }


def _status(version: str, connector: int, status: str) -> tuple[str, dict[str, Any]]:
    if version == V16:
        return "StatusNotification", {
            "connectorId": connector,
            "errorCode": "NoError",
            "status": status,
        }
    return "StatusNotification", {
        "timestamp": now_iso(),
        "connectorStatus": status,
        "evseId": connector,
        "connectorId": 1,
    }


def _event(
    transaction_id: str, event_type: str, seq_no: int, meter: int, token: str | None
) -> tuple[str, dict[str, Any]]:
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": now_iso(),
        "triggerReason": "MeterValuePeriodic"
        if event_type == "Updated"
        else "Authorized",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": now_iso(),
                "sampledValue": [{"value": meter, "unitOfMeasure": {"unit": "Wh"}}],
            }
        ],
    }
    if token is not None:
        payload["idToken"] = {"idToken": token, "type": "Central"}
    return "TransactionEvent", payload


async def _run_worker(
    stations: list[tuple[str, str]],
    profile: LoadProfile,
    source: str,
    index: int,
    progress: Any,
) -> WorkerReport:
    report = WorkerReport()
    handshakes = asyncio.Semaphore(profile.max_handshakes)
    stop_at = time.monotonic() + profile.duration
    rng = random.Random(index)
    tasks = [
        asyncio.create_task(
            _run_station(
                station_id,
                password,
                V201 if rng.random() < profile.v201_share else V16,
                profile,
                source,
                handshakes,
                stop_at,
                report,
            )
        )
        for station_id, password in stations
    ]
    everything = asyncio.gather(*tasks, return_exceptions=True)
    while not everything.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(everything), 1.0)
        answered = sum(len(samples) for samples in report.latencies.values())
        progress.put((index, report.connected, answered, report.disconnects))
    return report


def _worker_main(
    stations: list[tuple[str, str]],
    profile: LoadProfile,
    source: str,
    index: int,
    results: Any,
    progress: Any,
) -> None:
    report = asyncio.run(_run_worker(stations, profile, source, index, progress))
    results.put((index, _plain(report)))


def _plain(report: WorkerReport) -> dict[str, Any]:
    return {
        "latencies": dict(report.latencies),
        "errors": dict(report.errors),
        "connected": report.connected,
        "connect_failures": report.connect_failures,
        "disconnects": report.disconnects,
        "connect_seconds": report.connect_seconds,
    }


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_load(
    stations: list[tuple[str, str]],
    profile: LoadProfile,
    *,
    processes: int,
    out: TextIO = sys.stderr,
) -> dict[str, Any]:
    """Split the stations over worker processes; returns the merged figures."""
    processes = max(1, min(processes, len(stations)))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    progress = context.Queue()
    shares = [stations[i::processes] for i in range(processes)]
    workers = [
        context.Process(
            target=_worker_main,
            args=(share, profile, f"127.0.0.{2 + i % 250}", i, results, progress),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    merged: dict[str, Any] = {
        "latencies": defaultdict(list),
        "errors": defaultdict(int),
        "connected": 0,
        "connect_failures": 0,
        "disconnects": 0,
        "connect_seconds": [],
    }
    deadline = started + profile.duration + 300
    status: dict[int, tuple[int, int, int]] = {}
    reported = 0
    while reported < len(workers):
        if time.monotonic() > deadline:
            raise TimeoutError("load workers did not report in time")
        with contextlib.suppress(queue.Empty):
            index, connected, answered, disconnects = progress.get(timeout=0.2)
            status[index] = (connected, answered, disconnects)
            totals = [sum(values) for values in zip(*status.values(), strict=True)]
            out.write(
                f"\r[{time.monotonic() - started:6.1f}s] connected {totals[0]:>6}  "
                f"answered {totals[1]:>8}  disconnects {totals[2]:>4}"
            )
            out.flush()
        with contextlib.suppress(queue.Empty):
            _, report = results.get_nowait()
            reported += 1
            for action, samples in report["latencies"].items():
                merged["latencies"][action].extend(samples)
            for key, count in report["errors"].items():
                merged["errors"][key] += count
            for key in ("connected", "connect_failures", "disconnects"):
                merged[key] += report[key]
            merged["connect_seconds"].extend(report["connect_seconds"])
    for worker in workers:
        worker.join(timeout=30)
    merged["elapsed"] = time.monotonic() - started
    merged["stations"] = len(stations)
    merged["processes"] = processes
    out.write("\n")
    return merged


def format_report(merged: dict[str, Any]) -> str:
    share = merged["connected"] / max(1, merged["stations"])
    lines = [
        f"stations {merged['stations']} over {merged['processes']} processes, "
        f"{merged['elapsed']:.1f} s",
        f"connected {merged['connected']} ({share:.1%}), "
        f"connect failures {merged['connect_failures']}, "
        f"disconnects {merged['disconnects']}",
    ]
    if merged["connect_seconds"]:
        lines.append(
            "connect: p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms".format(
                *(1000 * percentile(merged["connect_seconds"], f) for f in (0.5, 0.99)),
                1000 * max(merged["connect_seconds"]),
            )
        )
    total = sum(len(s) for s in merged["latencies"].values())
    lines.append(
        f"calls answered {total} ({total / max(1e-9, merged['elapsed']):.0f}/s)"
    )
    header = ("count", "p50 ms", "p95 ms", "p99 ms", "max ms")
    lines.append(f"{'action':<20}" + "".join(f"{title:>9}" for title in header))
    for action, samples in sorted(merged["latencies"].items()):
        lines.append(
            f"{action:<20}{len(samples):>9}"
            + "".join(
                f"{1000 * percentile(samples, f):>9.2f}" for f in (0.5, 0.95, 0.99)
            )
            + f"{1000 * max(samples):>9.2f}"
        )
    for key, count in sorted(merged["errors"].items()):
        lines.append(f"error {key}: {count}")
    lines.append(f"machine: {os.cpu_count()} cpus")
    return "\n".join(lines)
