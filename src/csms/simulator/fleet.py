"""Running many simulated stations at once, with a progress line."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from csms.simulator.station import SimulatorOptions, run_station


@dataclass(frozen=True, slots=True)
class StationSpec:
    station_id: str
    password: str
    version: str


@dataclass
class FleetProgress:
    connected: int = 0
    charging: int = 0
    charges_started: int = 0
    charges_finished: int = 0
    meter_values: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self, elapsed: float) -> str:
        return (
            f"[{elapsed:6.1f}s] connected {self.connected:>5}  "
            f"charging {self.charging:>5}  started {self.charges_started:>5}  "
            f"finished {self.charges_finished:>5}  meter values {self.meter_values:>6}"
            f"  failures {len(self.failures)}"
        )


async def run_fleet(
    ocpp_url: str,
    stations: list[StationSpec],
    *,
    options: SimulatorOptions,
    duration: float | None,
    out: TextIO = sys.stderr,
    report_every: float = 1.0,
) -> FleetProgress:
    """Connect every station and let them answer the CSMS until ``duration``."""
    progress = FleetProgress()
    stop = asyncio.Event()
    started = time.monotonic()

    def on_event(event: str, details: dict[str, Any]) -> None:
        if event == "started":
            progress.charges_started += 1
            progress.charging += 1
        elif event == "finished":
            progress.charges_finished += 1
            progress.charging -= 1
        elif event == "meter":
            progress.meter_values += 1

    async def one(spec: StationSpec) -> None:
        try:
            async with run_station(
                ocpp_url,
                spec.station_id,
                spec.password,
                version=spec.version,
                options=options,
            ) as station:
                station.on_event = on_event
                progress.connected += 1
                try:
                    await stop.wait()
                finally:
                    progress.connected -= 1
        except Exception as exc:
            progress.failures.append(f"{spec.station_id}: {exc!r}")

    async def report() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), report_every)
            out.write("\r" + progress.line(time.monotonic() - started))
            out.flush()

    tasks = [asyncio.create_task(one(spec)) for spec in stations]
    reporter = asyncio.create_task(report())
    try:
        if duration is None:
            await asyncio.gather(*tasks)
        else:
            await asyncio.sleep(duration)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await reporter
        out.write("\n")
    return progress
