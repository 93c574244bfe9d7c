"""Fleet scenarios: a server under many stations, measured from outside.

One command per scenario, run from the project root::

    .venv/bin/python benchmarks/fleet.py hold   --stations 10000 --database postgres
    .venv/bin/python benchmarks/fleet.py steady --stations 2000 --database postgres
    .venv/bin/python benchmarks/fleet.py heavy  --stations 2000 --database postgres
    .venv/bin/python benchmarks/fleet.py storm  --stations 10000 --database postgres
    .venv/bin/python benchmarks/fleet.py hold --stations 2000 --compare

Scenarios (the issue's benchmark table, scaled by ``--stations``):

- ``hold``: every station connects, boots and heartbeats every 180 s.
- ``steady``: the same, and 52 % of the stations charge (50,000 of 96,536)
  with meter values every 60 s; charges start and stop along the way.
- ``heavy``: ``steady`` with meter values every 10 s.
- ``storm``: ``hold``; once every station is online the server is killed
  (SIGKILL) and started again, and the stations reconnect with a randomised
  doubling delay: how long until every one has booted again.

Targets: ``csms`` (``csms serve`` on a scratch database the runner creates,
migrates, fills with ``csms station import`` and drops), ``echo`` (a bare
WebSocket server answering every call) and ``ocpp`` (a central system on the
`ocpp` package's classes, no persistence) — see ``benchmarks/baselines``.
``--compare`` runs the scenario against all three and prints ours as a ratio to
each. ``--gateways N`` (and ``--bus-url``) are passed through to ``csms serve``.

The stations are ``csms load`` workers (its ``run_load``, in this process's
thread, its workers in their own processes). While they run, the runner samples
the CPU time and resident memory of every process of the server once a second
from ``/proc``. Everything listens and connects on 127.0.0.1 only, and every run
stops by itself after ``--duration`` seconds. It prints the figures, the
machine, and a last line of JSON for collecting results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib.metadata
import math
import os
import platform
import random
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from common import fetch_value
from sqlalchemy.engine import make_url

from csms.simulator.load import (
    PROGRESS_INTERVAL,
    LoadProfile,
    LoadProgress,
    build_anonymous_fleet,
    format_report,
    read_credentials,
    run_load,
    steady_window,
    summarize,
)

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "benchmarks" / "baselines"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
# The world: 96,536 stations, 50,000 of them charging at once.
WORLD_CHARGING_SHARE = 50_000 / 96_536
SCENARIOS = ("hold", "steady", "heavy", "storm")
TARGETS = ("csms", "echo", "ocpp")
# One process may hold this many sockets here (a hard limit of 20,000 files).
SOCKETS_PER_PROCESS = 19_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
STORM_WINDOW = 90.0


@dataclass(frozen=True)
class RunOptions:
    scenario: str
    target: str
    stations: int
    database: str
    duration: float
    processes: int
    heartbeat_interval: float
    charging_share: float
    meter_interval: float
    charge_duration: float
    v201_share: float
    max_handshakes: int
    connect_rate: float | None
    reconnect: bool
    gateways: int | None
    bus_url: str | None
    server_processes: int
    baseline_event_loop: str
    log_level: str
    postgres_url: str


@dataclass
class Sample:
    at: float
    cpu_seconds: float
    rss_kib: int
    processes: int


@dataclass
class ServerProcess:
    """A target server started in its own process group (so that a kill reaches
    every process it forked: gateways, baseline workers)."""

    command: list[str]
    environment: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    # CPU seconds of earlier incarnations (a storm kills and restarts it).
    cpu_before: float = 0.0

    def start(self, *, timeout: float = 120.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.command[0]} exited while starting:\n{tail}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            time.sleep(0.2)
        raise TimeoutError(f"nothing listens on port {self.port} after {timeout} s")

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash would."""
        assert self.process is not None
        self.cpu_before += cpu_seconds_of(process_tree(self.process.pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def sample(self) -> Sample:
        if self.process is None or self.process.poll() is not None:
            return Sample(time.time(), self.cpu_before, 0, 0)
        pids = process_tree(self.process.pid)
        return Sample(
            at=time.time(),
            cpu_seconds=self.cpu_before + cpu_seconds_of(pids),
            rss_kib=sum(rss_kib_of(pid) for pid in pids),
            processes=len(pids),
        )


@dataclass
class Outcome:
    options: RunOptions
    load: dict[str, Any]
    summary: dict[str, Any]
    samples: list[Sample]
    rss_before_kib: int
    log_counts: Counter[str] = field(default_factory=Counter)
    killed_at: float | None = None
    # From the kill until the new server listened again.
    restart_seconds: float | None = None
    database_cpu_seconds: float | None = None


# -- /proc -------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """The process and all its descendants, from /proc/<pid>/task/*/children."""
    found = [root]
    index = 0
    while index < len(found):
        pid = found[index]
        index += 1
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{pid}/task/{task}/children").read_text()
                    found.extend(int(child) for child in children.split())
    return found


def cpu_seconds_of(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            # Fields after the command (which may hold spaces): utime is the
            # 14th field of the line, stime the 15th.
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def rss_kib_of(pid: int) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    return 0


def postgres_cpu_seconds() -> float:
    """CPU time of every process named postgres on this machine (the database
    server is shared: other work on it counts too)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
    return cpu_seconds_of(pids)


# -- the machine -------------------------------------------------------------------


def describe_machine() -> dict[str, Any]:
    memory_kib = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    packages = ("websockets", "ocpp", "sqlalchemy", "asyncpg", "aiosqlite", "orjson")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "sqlite": sqlite3.sqlite_version,
        # The machine is shared: other work running at the same time shows here.
        "load_average": [round(value, 1) for value in os.getloadavg()],
        "packages": {name: importlib.metadata.version(name) for name in packages},
    }


# -- preparing a target ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def scratch_database(options: RunOptions, folder: Path) -> Iterator[str]:
    """A database URL nobody else uses, gone afterwards."""
    if options.database == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'csms.sqlite3'}"
        return
    name = f"csms_bench_fleet_{os.getpid()}"
    asyncio.run(fetch_value(options.postgres_url, f"DROP DATABASE IF EXISTS {name}"))
    asyncio.run(fetch_value(options.postgres_url, f"CREATE DATABASE {name}"))
    try:
        yield (
            make_url(options.postgres_url)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        asyncio.run(
            fetch_value(
                options.postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )
        )


def csms_command() -> str:
    return str(Path(sys.executable).parent / "csms")


def prepare_fleet(database_url: str, count: int, folder: Path) -> list[tuple[str, str]]:
    """Migrate, then register COUNT stations with ``csms station import``."""
    environment = {**os.environ, "CSMS_DATABASE_URL": database_url}
    subprocess.run([csms_command(), "migrate"], env=environment, check=True, cwd=ROOT)
    fleet_csv = folder / "fleet.csv"
    rng = random.Random(count)
    with fleet_csv.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "latitude", "longitude", "name"])
        for index in range(1, count + 1):
            writer.writerow(
                [
                    f"FLEET-{index:06d}",
                    f"{rng.uniform(-60, 70):.5f}",
                    f"{rng.uniform(-180, 180):.5f}",
                    f"Fleet station {index}",
                ]
            )
    subprocess.run(
        [csms_command(), "station", "import", str(fleet_csv)],
        env=environment,
        check=True,
        cwd=ROOT,
    )
    return read_credentials(fleet_csv.with_suffix(".passwords.csv"))


def build_server(options: RunOptions, folder: Path, database_url: str) -> ServerProcess:
    port = free_port()
    log_path = folder / f"{options.target}.log"
    interval = str(int(options.heartbeat_interval))
    if options.target == "csms":
        command = [csms_command(), "serve"]
        if options.gateways is not None:
            command += ["--gateways", str(options.gateways)]
        environment = {
            **os.environ,
            "CSMS_DATABASE_URL": database_url,
            "CSMS_HTTP_HOST": "127.0.0.1",
            "CSMS_HTTP_PORT": str(free_port()),
            "CSMS_OCPP_HOST": "127.0.0.1",
            "CSMS_OCPP_PORT": str(port),
            "CSMS_HEARTBEAT_INTERVAL": interval,
            "CSMS_LOG_LEVEL": options.log_level,
            "CSMS_LOG_FORMAT": "json",
        }
        if options.bus_url is not None:
            environment["CSMS_BUS_URL"] = options.bus_url
        return ServerProcess(command, environment, port, log_path)
    script = "echo_server.py" if options.target == "echo" else "ocpp_central.py"
    command = [
        sys.executable,
        str(BASELINES / script),
        "--port",
        str(port),
        "--processes",
        str(options.server_processes),
        "--heartbeat-interval",
        interval,
        "--event-loop",
        options.baseline_event_loop,
        # Never outlives the run, whatever happens to the runner.
        "--duration",
        str(options.duration + 600),
    ]
    return ServerProcess(command, dict(os.environ), port, log_path)


def count_log_levels(path: Path) -> Counter[str]:
    """Warnings and errors in the server's JSON log, by level and event name."""
    counts: Counter[str] = Counter()
    with contextlib.suppress(OSError), path.open("rb") as handle:
        for line in handle:
            if not line.startswith(b"{"):
                continue
            with contextlib.suppress(orjson.JSONDecodeError):
                entry = orjson.loads(line)
                level = entry.get("level")
                if level in ("warning", "error", "critical"):
                    counts[f"{level} {entry.get('event')}"] += 1
    return counts


# -- one run -----------------------------------------------------------------------


def build_profile(options: RunOptions, url: str) -> LoadProfile:
    return LoadProfile(
        url=url,
        duration=options.duration,
        heartbeat_interval=options.heartbeat_interval,
        charging_share=options.charging_share,
        meter_interval=options.meter_interval,
        charge_duration=options.charge_duration,
        max_handshakes=options.max_handshakes,
        connect_rate=options.connect_rate,
        v201_share=options.v201_share,
        # Stations reconnect after a dropped link, as real ones do; the storm
        # measures how fast.
        reconnect=options.reconnect or options.scenario == "storm",
    )


def run_scenario(options: RunOptions) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="csms-fleet-") as scratch:
        folder = Path(scratch)
        if options.target != "csms":
            fleet = build_anonymous_fleet(options.stations)
            return _drive(options, folder, "", fleet)
        with scratch_database(options, folder) as database_url:
            print(f"preparing {options.stations} stations on {options.database}…")
            fleet = prepare_fleet(database_url, options.stations, folder)
            return _drive(options, folder, database_url, fleet)


def _drive(
    options: RunOptions,
    folder: Path,
    database_url: str,
    fleet: list[tuple[str, str]],
) -> Outcome:
    server = build_server(options, folder, database_url)
    print(f"starting {' '.join(server.command[:2])} on port {server.port}…")
    server.start()
    try:
        time.sleep(1.0)
        before = server.sample()
        profile = build_profile(options, f"ws://127.0.0.1:{server.port}/ocpp")
        latest: list[LoadProgress] = []
        finished: dict[str, Any] = {}

        def drive() -> None:
            try:
                finished["load"] = run_load(
                    fleet,
                    profile,
                    processes=options.processes,
                    on_progress=latest.append,
                )
            except BaseException as exc:  # reported by the main thread
                finished["error"] = exc

        samples: list[Sample] = []
        database_cpu_before = (
            postgres_cpu_seconds()
            if options.target == "csms" and options.database == "postgres"
            else None
        )
        killed_at: float | None = None
        restart_seconds: float | None = None
        started = time.monotonic()
        load = threading.Thread(target=drive, name="load", daemon=True)
        load.start()
        while load.is_alive():
            load.join(timeout=1.0)
            samples.append(server.sample())
            if options.scenario != "storm" or killed_at is not None or not latest:
                continue
            # Kill once every station is online, or halfway through the run
            # at the latest, so that the storm always fits in the run.
            everyone = latest[-1].online >= len(fleet)
            halfway = time.monotonic() - started > options.duration / 2
            if everyone or halfway:
                killed_at = time.time()
                print(f"\nkilling the server with {latest[-1].online} online…")
                server.kill()
                server.start()
                restart_seconds = time.time() - killed_at
                print(f"server listening again after {restart_seconds:.1f} s")
        if "error" in finished:
            raise finished["error"]
        merged: dict[str, Any] = finished["load"]
        merged["duration"] = options.duration
        database_cpu = (
            None
            if database_cpu_before is None
            else postgres_cpu_seconds() - database_cpu_before
        )
    finally:
        server.stop()
    return Outcome(
        options=options,
        load=merged,
        summary=summarize(merged),
        samples=samples,
        rss_before_kib=before.rss_kib,
        log_counts=count_log_levels(server.log_path),
        killed_at=killed_at,
        restart_seconds=restart_seconds,
        database_cpu_seconds=database_cpu,
    )


# -- figures -----------------------------------------------------------------------


def figures(outcome: Outcome) -> dict[str, Any]:
    """What the run measured, as plain values (the JSON line and the tables)."""
    load = outcome.load
    summary = outcome.summary
    samples = outcome.samples
    connected = max(1, summary["connected"])
    result: dict[str, Any] = {
        "scenario": outcome.options.scenario,
        "target": outcome.options.target,
        "database": outcome.options.database
        if outcome.options.target == "csms"
        else None,
        "gateways": outcome.options.gateways,
        "stations": summary["stations"],
        "connected_share": round(summary["connected_share"], 4),
        # Online = connected with an answered boot; at the end of the run
        # (before the stations close) and at its best.
        "online_share_end": round(_online_at_end(load) / summary["stations"], 4),
        "online_share_peak": round(
            max((entry[4] for entry in load["timeline"]), default=0)
            / summary["stations"],
            4,
        ),
        "reconnects": summary["reconnects"],
        "connect_failures": summary["connect_failures"],
        "disconnects": summary["disconnects"],
        "errors": sum(summary["errors"].values()),
        "error_kinds": summary["errors"],
        "calls": summary["calls"],
        "calls_per_second": round(summary["calls_per_second"], 1),
        "steady_calls_per_second": _rounded(summary["steady_calls_per_second"]),
        "actions": summary["actions"],
        "connect_ms": summary["connect_ms"],
        "server_log": dict(outcome.log_counts.most_common(8)),
    }

    # Memory: the server's resident set once every station is up (the last
    # sample before the run ends), less what it held before the first one.
    if samples:
        peak = max(sample.rss_kib for sample in samples)
        up_samples = [s for s in samples if s.rss_kib > 0]
        settled = up_samples[-3] if len(up_samples) >= 3 else up_samples[-1]
        result["server_processes"] = max(sample.processes for sample in samples)
        result["server_rss_mib_peak"] = round(peak / 1024, 1)
        result["server_rss_mib_before"] = round(outcome.rss_before_kib / 1024, 1)
        result["server_kib_per_station"] = round(
            (settled.rss_kib - outcome.rss_before_kib) / connected, 1
        )
        result["server_kib_per_station_total"] = round(settled.rss_kib / connected, 1)

    # CPU per message: the server's CPU time over the steady window (every
    # station connected) divided by the calls answered in it.
    steady = steady_window(load)
    if steady is not None and samples and outcome.killed_at is None:
        (up_at, _, answered_up, *_), (end_at, _, answered_end, *_) = steady
        window = [s for s in samples if up_at <= s.at <= end_at]
        calls = answered_end - answered_up
        if len(window) >= 2 and calls > 0:
            cpu = window[-1].cpu_seconds - window[0].cpu_seconds
            result["server_cpu_us_per_message"] = round(1e6 * cpu / calls, 1)
            result["server_cpu_share"] = round(cpu / (window[-1].at - window[0].at), 3)
    if samples and summary["calls"]:
        total_cpu = samples[-1].cpu_seconds - samples[0].cpu_seconds
        result["server_cpu_us_per_call_whole_run"] = round(
            1e6 * total_cpu / summary["calls"], 1
        )
    if outcome.database_cpu_seconds is not None and summary["calls"]:
        result["postgres_cpu_us_per_call_whole_run"] = round(
            1e6 * outcome.database_cpu_seconds / summary["calls"], 1
        )

    if outcome.killed_at is not None:
        result.update(storm_figures(outcome.killed_at, load["booted_at"], connected))
        result["storm_restart_seconds"] = _rounded(outcome.restart_seconds or 0.0)
    return result


def _online_at_end(load: dict[str, Any]) -> int:
    """Stations online just before the run's end (when they start closing)."""
    ends = load["started_at"] + load["duration"] - 2 * PROGRESS_INTERVAL
    before = [entry[4] for entry in load["timeline"] if entry[0] <= ends]
    return before[-1] if before else 0


def storm_figures(
    killed_at: float, booted_at: list[float], stations: int
) -> dict[str, Any]:
    """How long after the kill the stations had booted again."""
    again = sorted(moment - killed_at for moment in booted_at if moment > killed_at)

    def time_to(share: float) -> float | None:
        needed = math.ceil(share * stations)
        return round(again[needed - 1], 2) if len(again) >= needed else None

    within = sum(1 for seconds in again if seconds <= STORM_WINDOW)
    return {
        "storm_rebooted": len(again),
        "storm_seconds_to_50": time_to(0.5),
        "storm_seconds_to_99": time_to(0.99),
        "storm_seconds_to_100": time_to(1.0),
        "storm_share_within_90s": round(min(within, stations) / stations, 4),
    }


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)


def print_outcome(outcome: Outcome, result: dict[str, Any]) -> None:
    print()
    print(format_report(outcome.load))
    print()
    for key in (
        "server_processes",
        "server_rss_mib_before",
        "server_rss_mib_peak",
        "server_kib_per_station",
        "server_kib_per_station_total",
        "server_cpu_us_per_message",
        "server_cpu_share",
        "server_cpu_us_per_call_whole_run",
        "postgres_cpu_us_per_call_whole_run",
        "storm_restart_seconds",
        "storm_rebooted",
        "storm_seconds_to_50",
        "storm_seconds_to_99",
        "storm_seconds_to_100",
        "storm_share_within_90s",
    ):
        if key in result:
            print(f"{key:<36}{result[key]}")
    for event, count in result["server_log"].items():
        print(f"server log: {event}: {count}")


RATIO_ROWS = (
    ("connected share", ("connected_share",)),
    ("online share at the end", ("online_share_end",)),
    ("calls/s, steady", ("steady_calls_per_second",)),
    ("Heartbeat p50 ms", ("actions", "Heartbeat", "p50")),
    ("Heartbeat p99 ms", ("actions", "Heartbeat", "p99")),
    ("BootNotification p99 ms", ("actions", "BootNotification", "p99")),
    ("MeterValues p99 ms", ("actions", "MeterValues", "p99")),
    ("TransactionEvent p99 ms", ("actions", "TransactionEvent", "p99")),
    ("StartTransaction p99 ms", ("actions", "StartTransaction", "p99")),
    ("connect p99 ms", ("connect_ms", "p99")),
    ("server KiB per station", ("server_kib_per_station",)),
    ("server CPU µs per message", ("server_cpu_us_per_message",)),
    ("storm: s to 100 % rebooted", ("storm_seconds_to_100",)),
)


def _lookup(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def print_comparison(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ours next to both baselines, and ours as a ratio to each."""
    ours = results["csms"]
    ratios: dict[str, Any] = {}
    print()
    header = f"{'':<30}{'csms':>11}{'echo':>11}{'ocpp':>11}{'÷ echo':>9}{'÷ ocpp':>9}"
    print(header)
    print("-" * len(header))
    for label, path in RATIO_ROWS:
        values = {name: _lookup(result, path) for name, result in results.items()}
        if all(value is None for value in values.values()):
            continue
        cells = "".join(
            f"{'-' if values.get(name) is None else f'{values[name]:.2f}':>11}"
            for name in TARGETS
        )
        row: dict[str, float | None] = {}
        for baseline in ("echo", "ocpp"):
            theirs = values.get(baseline)
            mine = _lookup(ours, path)
            row[baseline] = (
                round(mine / theirs, 2) if mine is not None and theirs else None
            )
        ratios[label] = row
        print(
            f"{label:<30}{cells}"
            + "".join(
                f"{'-' if row[b] is None else f'{row[b]:.2f}x':>9}"
                for b in ("echo", "ocpp")
            )
        )
    return ratios


# -- the command -------------------------------------------------------------------


def parse_options() -> tuple[RunOptions, bool]:
    parser = argparse.ArgumentParser(
        description="Fleet scenarios against csms or a baseline, measured from outside."
    )
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--target", choices=TARGETS, default="csms")
    parser.add_argument(
        "--compare", action="store_true", help="Run against csms, echo and ocpp."
    )
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument(
        "--database", choices=("sqlite", "postgres"), default="postgres"
    )
    parser.add_argument("--duration", type=float, default=None, help="Seconds.")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="Load worker processes (default: 2, more past 15,000 stations each).",
    )
    parser.add_argument("--heartbeat-interval", type=float, default=180.0)
    parser.add_argument("--charging-share", type=float, default=None)
    parser.add_argument("--meter-interval", type=float, default=None)
    parser.add_argument("--charge-duration", type=float, default=120.0)
    parser.add_argument("--v201-share", type=float, default=0.5)
    parser.add_argument("--max-handshakes", type=int, default=200)
    parser.add_argument(
        "--connect-rate",
        type=float,
        default=None,
        help="New stations per second while the fleet comes up (default: 200; "
        "storm: all at once).",
    )
    parser.add_argument(
        "--reconnect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Stations reconnect after a dropped link (always in a storm).",
    )
    parser.add_argument(
        "--gateways", type=int, default=None, help="Passed to `csms serve --gateways`."
    )
    parser.add_argument("--bus-url", default=None, help="CSMS_BUS_URL for csms serve.")
    parser.add_argument(
        "--server-processes",
        type=int,
        default=1,
        help="Processes of a baseline server (SO_REUSEPORT).",
    )
    parser.add_argument(
        "--baseline-event-loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="The baselines' event loop; match the csms serve under test.",
    )
    parser.add_argument("--log-level", default="INFO", help="CSMS_LOG_LEVEL.")
    arguments = parser.parse_args()

    scenario = arguments.scenario
    charging = scenario in ("steady", "heavy")
    default_meter = 10.0 if scenario == "heavy" else 60.0
    # After the fleet is up: time for every station to heartbeat at least once
    # at 180 s, and for charges to start, meter and stop.
    settle = {"hold": 200.0, "steady": 240.0, "heavy": 180.0, "storm": 240.0}
    connect_rate = arguments.connect_rate or (None if scenario == "storm" else 200.0)
    ramp = 0.0 if connect_rate is None else arguments.stations / connect_rate
    processes = arguments.processes or max(2, math.ceil(arguments.stations / 15_000))
    options = RunOptions(
        scenario=scenario,
        target=arguments.target,
        stations=arguments.stations,
        database=arguments.database,
        duration=arguments.duration or ramp + settle[scenario],
        processes=processes,
        heartbeat_interval=arguments.heartbeat_interval,
        charging_share=(
            arguments.charging_share
            if arguments.charging_share is not None
            else (WORLD_CHARGING_SHARE if charging else 0.0)
        ),
        meter_interval=arguments.meter_interval or default_meter,
        charge_duration=arguments.charge_duration,
        v201_share=arguments.v201_share,
        max_handshakes=arguments.max_handshakes,
        connect_rate=connect_rate,
        reconnect=arguments.reconnect,
        gateways=arguments.gateways,
        bus_url=arguments.bus_url,
        server_processes=arguments.server_processes,
        baseline_event_loop=arguments.baseline_event_loop,
        log_level=arguments.log_level,
        postgres_url=os.environ.get("CSMS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
    )
    return options, arguments.compare


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Unwind like Ctrl-C: the server is stopped and the scratch database dropped.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    options, compare = parse_options()
    machine = describe_machine()
    if options.database == "postgres":
        machine["postgresql"] = asyncio.run(
            fetch_value(options.postgres_url, "SHOW server_version")
        )
    print(f"machine: {orjson.dumps(machine).decode()}")
    if options.stations > SOCKETS_PER_PROCESS and not options.gateways:
        print(
            f"warning: one server process holds at most ~{SOCKETS_PER_PROCESS} "
            "sockets here; give --gateways N (csms) or --server-processes N"
        )
    targets = TARGETS if compare else (options.target,)
    results: dict[str, dict[str, Any]] = {}
    for target in targets:
        run = replace(options, target=target)
        print(f"\n== {run.scenario} against {target}: {run.stations} stations ==")
        outcome = run_scenario(run)
        results[target] = figures(outcome)
        print_outcome(outcome, results[target])
    machine["load_average_after"] = [round(value, 1) for value in os.getloadavg()]
    line: dict[str, Any] = {"machine": machine}
    if compare:
        line["ratios"] = print_comparison(results)
        line["runs"] = results
    else:
        line.update(results[options.target])
    print()
    print(orjson.dumps(line).decode())


if __name__ == "__main__":
    main()
