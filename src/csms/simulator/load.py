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

With ``reconnect`` a station whose link drops (or whose connection attempt
fails) tries again after a randomised, doubling delay, and boots again: this is
how a reconnect storm is measured. The parent keeps a timeline of what the
workers report each second and, for every accepted boot, its wall-clock time.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"
# How often each worker tells the parent where it stands.
PROGRESS_INTERVAL = 1.0
# Once the fleet is up, this long for its last status notifications to pass
# before the steady state is measured.
SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class LoadProfile:
    url: str
    duration: float = 60.0
    heartbeat_interval: float | None = None
    charging_share: float = 0.0
    meter_interval: float = 60.0
    charge_duration: float = 120.0
    max_handshakes: int = 200
    # New stations per second over the whole fleet (None: all at once); each
    # worker takes its share of the rate.
    connect_rate: float | None = None
    v201_share: float = 0.0
    connectors: int = 1
    # Reconnect after a dropped link or a failed attempt, waiting a random time
    # up to reconnect_delay, doubling after each failure up to the maximum.
    reconnect: bool = False
    reconnect_delay: float = 1.0
    reconnect_delay_max: float = 30.0


@dataclass(frozen=True)
class LoadProgress:
    """Totals over all workers, as they last reported."""

    elapsed: float
    connected: int
    answered: int
    disconnects: int
    online: int


@dataclass
class WorkerReport:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Stations that connected at least once; reconnects are counted apart.
    connected: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    reconnects: int = 0
    # Links open with an answered BootNotification, just now.
    online: int = 0
    connect_seconds: list[float] = field(default_factory=list)
    # Wall-clock time (time.time()) of every answered BootNotification.
    booted_at: list[float] = field(default_factory=list)


def read_credentials(path: Path) -> list[tuple[str, str]]:
    """Read ``id,password`` rows, as ``csms station import`` writes them."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["id"], row["password"]) for row in csv.DictReader(handle)]


def build_anonymous_fleet(
    count: int, *, prefix: str = "LOAD-"
) -> list[tuple[str, str]]:
    """Station ids without passwords: no Authorization header is sent (for a
    server that does not authenticate, such as the benchmarks' baselines)."""
    return [(f"{prefix}{index:06d}", "") for index in range(1, count + 1)]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Client:
    """One station's socket: send a CALL, wait for its answer, time it.

    A reader task takes every frame as it arrives: answers go to the call that
    waits for them, and the CSMS's own CALLs (a TriggerMessage after a
    reconnect, a remote start) are answered at once, as a station's firmware
    would, even while the station has nothing to send.
    """

    def __init__(self, socket: ClientConnection, report: WorkerReport) -> None:
        self.socket = socket
        self.report = report
        self._counter = itertools.count()
        # OCPP-J allows one outstanding call per direction (1.6 section 4.1.1).
        self._turn = asyncio.Lock()
        self._waiting: dict[str, asyncio.Future[list[Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        async with self._turn:
            return await self._call(action, payload)

    async def _call(
        self, action: str, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        message_id = f"{next(self._counter):x}"
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = answer
        if self.reader.done():
            # The link closed before this call: nobody would ever answer it.
            del self._waiting[message_id]
            raise websockets.ConnectionClosed(None, None)
        started = time.perf_counter()
        await self.socket.send(orjson.dumps([2, message_id, action, payload]).decode())
        frame = await answer
        elapsed = time.perf_counter() - started
        if frame[0] == 3:
            self.report.latencies[action].append(elapsed)
            result: dict[str, Any] = frame[2]
            return result
        self.report.errors[f"{action}:{frame[2]}"] += 1
        return None

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                frame = orjson.loads(raw)
                if frame[0] == 2:
                    answer = _answer_csms_call(frame[2])
                    await self.socket.send(orjson.dumps([3, frame[1], answer]).decode())
                    continue
                waiting = self._waiting.pop(frame[1], None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(frame)
        except websockets.ConnectionClosed:
            pass
        except (orjson.JSONDecodeError, IndexError, TypeError) as exc:
            self.report.errors[f"frame:{type(exc).__name__}"] += 1
        finally:
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(websockets.ConnectionClosed(None, None))
                    # Raised in the call that waits, if it still does; no
                    # "exception never retrieved" noise when it was cancelled.
                    waiting.exception()
            self._waiting.clear()


def _answer_csms_call(action: str) -> dict[str, Any]:
    if action == "GetTransactionStatus":
        # A load station forgets its charges when its link drops.
        return {"ongoingIndicator": False, "messagesInQueue": False}
    return {"status": "Accepted"}


def _backoff(profile: LoadProfile, failures: int) -> float:
    """Full jitter: a random wait up to a ceiling that doubles with each failure."""
    ceiling = min(profile.reconnect_delay_max, profile.reconnect_delay * 2**failures)
    return random.uniform(0, ceiling)


async def _connect(
    station_id: str,
    password: str,
    version: str,
    profile: LoadProfile,
    source: str,
) -> ClientConnection:
    headers = {}
    if password:
        credentials = base64.b64encode(f"{station_id}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {credentials}"
    return await websockets.connect(
        f"{profile.url.rstrip('/')}/{station_id}",
        subprotocols=[version],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=120,
        ping_interval=None,
        compression=None,
        local_addr=(source, 0),
    )


async def _run_station(
    station_id: str,
    password: str,
    version: str,
    profile: LoadProfile,
    source: str,
    handshakes: asyncio.Semaphore,
    stop_at: float,
    report: WorkerReport,
    delay: float,
) -> None:
    ever_connected = False
    failures = 0
    await asyncio.sleep(delay)
    while time.monotonic() < stop_at:
        async with handshakes:
            started = time.perf_counter()
            try:
                socket = await _connect(station_id, password, version, profile, source)
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                socket = None
        if socket is None:
            report.connect_failures += 1
            if not profile.reconnect:
                return
            failures += 1
            await asyncio.sleep(_backoff(profile, failures))
            continue
        if ever_connected:
            report.reconnects += 1
        else:
            ever_connected = True
            report.connected += 1
            report.connect_seconds.append(time.perf_counter() - started)
        failures = 0
        try:
            dropped = await _hold_link(socket, version, profile, stop_at, report)
        except websockets.ConnectionClosed:
            dropped = True
        finally:
            await socket.close()
        if not dropped:
            return
        report.disconnects += 1
        if not profile.reconnect:
            return
        await asyncio.sleep(_backoff(profile, 0))


async def _hold_link(
    socket: ClientConnection,
    version: str,
    profile: LoadProfile,
    stop_at: float,
    report: WorkerReport,
) -> bool:
    """One connection's life: boot, then heartbeats (and charges) until the run
    ends. True when the CSMS dropped the link first."""
    client = _Client(socket, report)
    try:
        boot = await client.call(*_boot(version))
    except BaseException:
        client.reader.cancel()
        raise
    if boot is not None:
        report.booted_at.append(time.time())
    report.online += 1
    # The reader ends when the link closes.
    closed = client.reader
    charge_task: asyncio.Task[None] | None = None
    try:
        interval = profile.heartbeat_interval or float(
            (boot or {}).get("interval", 180)
        )
        for connector in range(1, profile.connectors + 1):
            await client.call(*_status(version, connector, "Available"))
        if random.random() < profile.charging_share:
            charge_task = asyncio.create_task(
                _charge_loop(client, version, profile, stop_at)
            )
        # Spread the first heartbeat over the interval, as a real fleet does.
        next_beat = time.monotonic() + random.uniform(0, interval)
        watched: set[asyncio.Future[Any]] = {closed}
        if charge_task is not None:
            watched.add(charge_task)
        while time.monotonic() < stop_at:
            wait = min(next_beat, stop_at) - time.monotonic()
            await asyncio.wait(watched, timeout=max(0.0, wait))
            if closed.done():
                return True
            if charge_task is not None and charge_task.done():
                watched.discard(charge_task)
                # Raises ConnectionClosed when the link dropped mid-charge.
                charge_task.result()
            if time.monotonic() >= stop_at:
                break
            if time.monotonic() >= next_beat:
                await client.call("Heartbeat", {})
                next_beat += interval
        if charge_task is not None:
            await charge_task
        return False
    finally:
        report.online -= 1
        client.reader.cancel()
        if charge_task is not None:
            if not charge_task.done():
                charge_task.cancel()
            # Awaited even when done: a charge the closing link ended with
            # ConnectionClosed is accounted here, not reported as never retrieved.
            with contextlib.suppress(
                asyncio.CancelledError, websockets.ConnectionClosed
            ):
                await charge_task


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
    processes: int,
    progress: Any,
) -> WorkerReport:
    report = WorkerReport()
    handshakes = asyncio.Semaphore(profile.max_handshakes)
    stop_at = time.monotonic() + profile.duration
    rng = random.Random(index)
    # This worker's share of the fleet's connect rate.
    spacing = 0.0
    if profile.connect_rate:
        spacing = processes / profile.connect_rate
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
                position * spacing,
            )
        )
        for position, (station_id, password) in enumerate(stations)
    ]
    everything = asyncio.gather(*tasks, return_exceptions=True)
    while not everything.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(everything), PROGRESS_INTERVAL)
        answered = sum(len(samples) for samples in report.latencies.values())
        progress.put(
            (index, report.connected, answered, report.disconnects, report.online)
        )
    # A station that failed in a way the profile does not expect is counted, so
    # that a broken run never looks clean.
    for outcome in everything.result():
        if isinstance(outcome, BaseException):
            report.errors[f"station:{type(outcome).__name__}"] += 1
    return report


def _worker_main(
    stations: list[tuple[str, str]],
    profile: LoadProfile,
    source: str,
    index: int,
    processes: int,
    results: Any,
    progress: Any,
) -> None:
    report = asyncio.run(
        _run_worker(stations, profile, source, index, processes, progress)
    )
    results.put((index, _plain(report)))


def _plain(report: WorkerReport) -> dict[str, Any]:
    return {
        "latencies": dict(report.latencies),
        "errors": dict(report.errors),
        "connected": report.connected,
        "connect_failures": report.connect_failures,
        "disconnects": report.disconnects,
        "reconnects": report.reconnects,
        "connect_seconds": report.connect_seconds,
        "booted_at": report.booted_at,
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
    on_progress: Callable[[LoadProgress], None] | None = None,
) -> dict[str, Any]:
    """Split the stations over worker processes; returns the merged figures.

    ``on_progress`` is called from this thread with the totals each time a
    worker reports (about once a second each).
    """
    processes = max(1, min(processes, len(stations)))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    progress = context.Queue()
    shares = [stations[i::processes] for i in range(processes)]
    workers = [
        context.Process(
            target=_worker_main,
            args=(
                share,
                profile,
                f"127.0.0.{2 + i % 250}",
                i,
                processes,
                results,
                progress,
            ),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    started = time.monotonic()
    started_wall = time.time()
    for worker in workers:
        worker.start()
    merged: dict[str, Any] = {
        "latencies": defaultdict(list),
        "errors": defaultdict(int),
        "connected": 0,
        "connect_failures": 0,
        "disconnects": 0,
        "reconnects": 0,
        "connect_seconds": [],
        "booted_at": [],
        # (wall-clock time, connected, answered, disconnects, online) totals.
        "timeline": [],
        "started_at": started_wall,
    }
    # TODO: a worker whose stations keep reconnecting to a server that no
    # longer answers closes them slowly; the run then ends up to 300 s late.
    deadline = started + profile.duration + 300
    status: dict[int, tuple[int, int, int, int]] = {}
    reported = 0
    while reported < len(workers):
        if time.monotonic() > deadline:
            raise TimeoutError("load workers did not report in time")
        with contextlib.suppress(queue.Empty):
            index, *counts = progress.get(timeout=0.2)
            status[index] = (counts[0], counts[1], counts[2], counts[3])
            totals = [sum(values) for values in zip(*status.values(), strict=True)]
            elapsed = time.monotonic() - started
            merged["timeline"].append((time.time(), *totals))
            out.write(
                f"\r[{elapsed:6.1f}s] connected {totals[0]:>6}  online {totals[3]:>6}"
                f"  answered {totals[1]:>8}  disconnects {totals[2]:>4}"
            )
            out.flush()
            if on_progress is not None:
                on_progress(LoadProgress(elapsed, *totals))
        with contextlib.suppress(queue.Empty):
            _, report = results.get_nowait()
            reported += 1
            for action, samples in report["latencies"].items():
                merged["latencies"][action].extend(samples)
            for key, count in report["errors"].items():
                merged["errors"][key] += count
            for key in ("connected", "connect_failures", "disconnects", "reconnects"):
                merged[key] += report[key]
            merged["connect_seconds"].extend(report["connect_seconds"])
            merged["booted_at"].extend(report["booted_at"])
    for worker in workers:
        worker.join(timeout=30)
    merged["elapsed"] = time.monotonic() - started
    merged["stations"] = len(stations)
    merged["processes"] = processes
    out.write("\n")
    return merged


def steady_window(
    merged: dict[str, Any],
) -> tuple[tuple[float, int, int, int, int], tuple[float, int, int, int, int]] | None:
    """The first and last progress totals of the steady state: from
    ``SETTLE_SECONDS`` after the most stations were online (booted) to the end.

    The ramp-up (handshakes, boots, first status notifications) is left out:
    what remains is the load the profile asks for once the fleet is up. None
    when the run never got there for long enough.
    """
    timeline: list[tuple[float, int, int, int, int]] = merged["timeline"]
    if not timeline:
        return None
    most = max(entry[4] for entry in timeline)
    up = next(entry for entry in timeline if entry[4] >= most)
    # The last reports come as stations close; they are not steady state.
    last = next(entry for entry in reversed(timeline) if entry[4] >= most)
    settled = next(
        (entry for entry in timeline if entry[0] >= up[0] + SETTLE_SECONDS), last
    )
    if last[0] - settled[0] >= 2 * SETTLE_SECONDS:
        up = settled
    if last[0] - up[0] < 2 * PROGRESS_INTERVAL:
        return None
    return up, last


def steady_rate(merged: dict[str, Any]) -> float:
    """Calls answered per second in the steady window; NaN without one."""
    window = steady_window(merged)
    if window is None:
        return float("nan")
    first, last = window
    return (last[2] - first[2]) / (last[0] - first[0])


def summarize(merged: dict[str, Any]) -> dict[str, Any]:
    """The figures of a run as plain JSON-ready values (latencies in ms)."""
    total = sum(len(samples) for samples in merged["latencies"].values())
    connect = merged["connect_seconds"]
    return {
        "stations": merged["stations"],
        "processes": merged["processes"],
        "elapsed_s": round(merged["elapsed"], 2),
        "connected": merged["connected"],
        "connected_share": merged["connected"] / max(1, merged["stations"]),
        "connect_failures": merged["connect_failures"],
        "disconnects": merged["disconnects"],
        "reconnects": merged["reconnects"],
        "connect_ms": _quantiles(connect),
        "calls": total,
        "calls_per_second": total / max(1e-9, merged["elapsed"]),
        "steady_calls_per_second": steady_rate(merged),
        "actions": {
            action: {"count": len(samples), **_quantiles(samples)}
            for action, samples in sorted(merged["latencies"].items())
        },
        "errors": dict(merged["errors"]),
    }


def _quantiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return round(
            1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3
        )

    return {
        "p50": at(0.5),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(1000 * ordered[-1], 3),
    }


def format_report(merged: dict[str, Any]) -> str:
    share = merged["connected"] / max(1, merged["stations"])
    lines = [
        f"stations {merged['stations']} over {merged['processes']} processes, "
        f"{merged['elapsed']:.1f} s",
        f"connected {merged['connected']} ({share:.1%}), "
        f"connect failures {merged['connect_failures']}, "
        f"disconnects {merged['disconnects']}, reconnects {merged['reconnects']}",
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
        f"calls answered {total} ({total / max(1e-9, merged['elapsed']):.0f}/s"
        f" overall, {steady_rate(merged):.0f}/s once all were up)"
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
