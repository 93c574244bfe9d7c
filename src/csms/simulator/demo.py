"""``csms demo``: the CSMS, three simulated stations and a customer's journey,
printed step by step, on a fresh embedded database."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from csms.app import Csms
from csms.db.engine import create_engine
from csms.db.migrate import migrate
from csms.settings import Settings
from csms.simulator.station import V16, V201, SimulatorOptions, run_station

DEMO_DATABASE = Path("var") / "demo.sqlite3"
# Around Berlin's Alexanderplatz: (id, name, latitude, longitude, version).
DEMO_STATIONS = (
    ("DEMO-ALEX", "Alexanderplatz", 52.5219, 13.4132, V16),
    ("DEMO-HBF", "Hauptbahnhof", 52.5251, 13.3694, V201),
    ("DEMO-OST", "Ostbahnhof", 52.5105, 13.4346, V16),
)
CUSTOMER = {"email": "dana@example.com", "password": "demo-password-1", "name": "Dana"}
DEMO_OPERATOR = "operator@example.com"


class _Steps:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.number = 0

    def step(self, title: str) -> None:
        self.number += 1
        self.out.write(f"\n{self.number}. {title}\n")

    def say(self, line: str) -> None:
        self.out.write(f"   {line}\n")
        self.out.flush()


async def run_demo(
    settings: Settings, *, out: TextIO = sys.stdout, keep_running: bool = False
) -> None:
    _remove_demo_database()
    settings = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{DEMO_DATABASE}"}
    )
    engine = create_engine(settings.database_url)
    await migrate(engine)
    csms = Csms(settings, engine=engine)
    await csms.start()
    steps = _Steps(out)
    base = f"http://127.0.0.1:{csms.http_port}"
    ocpp_url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
    steps.say(f"CSMS running: API {base}/docs, stations {ocpp_url}/<id>")
    try:
        async with contextlib.AsyncExitStack() as stack:
            steps.step("An operator registers three stations; they connect and boot")
            for station_id, name, lat, lon, version in DEMO_STATIONS:
                _, password = await csms.stations.register(
                    station_id, name=name, latitude=lat, longitude=lon
                )
                assert password is not None
                await stack.enter_async_context(
                    run_station(
                        ocpp_url,
                        station_id,
                        password,
                        version=version,
                        options=SimulatorOptions(meter_interval=60, time_factor=120),
                    )
                )
                steps.say(f"{station_id} ({name}) connected over {version}")
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, timeout=30)
            )
            await _journey(http, steps)
            if keep_running:
                await _show_the_browser_way(csms, base, steps)
                steps.step("Still running — press Ctrl-C to stop")
                await asyncio.Event().wait()
    finally:
        await csms.stop()


async def _journey(http: httpx.AsyncClient, steps: _Steps) -> None:
    steps.step("A customer registers and logs in")
    _check(await http.post("/api/v1/customers", json=CUSTOMER))
    login = _check(
        await http.post(
            "/api/v1/auth/token",
            data={"username": CUSTOMER["email"], "password": CUSTOMER["password"]},
        )
    )
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    me = _check(await http.get("/api/v1/me", headers=auth))
    steps.say(f"customer #{me['id']} {me['email']}")

    steps.step("They add their car")
    car = _check(
        await http.post(
            "/api/v1/cars",
            json={"make": "Volkswagen", "model": "ID.3", "plate": "B-DA 2024"},
            headers=auth,
        )
    )
    steps.say(f"car #{car['id']}: {car['make']} {car['model']} ({car['plate']})")

    steps.step("They look for stations near Alexanderplatz")
    nearby = _check(
        await http.get(
            "/api/v1/stations/nearby",
            params={"lat": 52.5200, "lon": 13.4100, "radius_km": 5},
        )
    )
    for found in nearby["items"]:
        steps.say(f"{found['distance_km']:6.2f} km  {found['id']:<10} {found['state']}")
    chosen = nearby["items"][0]["id"]

    steps.step(f"They start a charge at {chosen}")
    record = _check(
        await http.post(
            "/api/v1/charging-sessions",
            json={"car_id": car["id"], "station_id": chosen},
            headers=auth,
        )
    )
    steps.say(f"record {record['id']} is {record['state']}")

    steps.step("They watch it charge")
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        record = _check(
            await http.get(f"/api/v1/charging-sessions/{record['id']}", headers=auth)
        )
        steps.say(f"{record['state']:<9} {record['energy_kwh'] or 0:7.3f} kWh")

    steps.step("They stop it")
    _check(
        await http.post(f"/api/v1/charging-sessions/{record['id']}/stop", headers=auth)
    )
    for _ in range(50):
        record = _check(
            await http.get(f"/api/v1/charging-sessions/{record['id']}", headers=auth)
        )
        if record["state"] == "Finished":
            break
        await asyncio.sleep(0.2)
    steps.say(f"{record['state']}: {record['energy_kwh']} kWh, {record['stop_reason']}")

    steps.step("Their Charge Detail Records")
    page = _check(await http.get("/api/v1/charge-detail-records", headers=auth))
    for item in page["items"]:
        steps.say(
            f"{item['id']}  {item['station_id']}  {item['state']}  "
            f"{item['energy_kwh']} kWh"
        )


async def _show_the_browser_way(csms: Csms, base: str, steps: _Steps) -> None:
    """Print where to charge from a browser and watch it as the operator."""
    token = await csms.operators.add(DEMO_OPERATOR)
    steps.step("Now try it in a browser")
    steps.say(f"customer app:  {base}/")
    steps.say(f"   log in as {CUSTOMER['email']} / {CUSTOMER['password']}, or register")
    steps.say("   search near 52.52, 13.41 and start a charge")
    steps.say(f"operator page: {base}/operator")
    steps.say(f"   operator token (shown once): {token}")
    steps.say(f"metrics:       {base}/metrics")


def _remove_demo_database() -> None:
    DEMO_DATABASE.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{DEMO_DATABASE}{suffix}").unlink()


def _check(answer: httpx.Response) -> Any:
    if answer.status_code >= 400:
        raise RuntimeError(f"{answer.request.url}: {answer.status_code} {answer.text}")
    return answer.json()
