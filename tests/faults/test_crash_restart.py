"""The CSMS killed (SIGKILL) in the middle of concurrent charges and started
again on the same database and ports: the stations queue while it is gone,
reconnect, deliver, and every charge they performed is stored exactly once with
the energy their own meters measured. A remote start in flight when the CSMS
died ends in exactly one transaction, or fails clearly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from csms.clock import SystemClock
from csms.db.engine import create_engine, create_sessionmaker
from csms.simulator.station import V16, V201, run_station
from csms.stations.service import StationService

from support.charging import start_charge, wait_for_session
from support.customers import Customer, register_customer
from support.faults import (
    FAULTY,
    assert_stored_exactly_once,
    performed,
    stored_records,
)
from support.process import CsmsProcess, start_csms

PASSWORD = "station-password-0001"
FAST_RECOVERY = {
    "CSMS_RESYNC_DELAY": "PT0.2S",
    "CSMS_RESYNC_GRACE": "PT1S",
    "CSMS_LIVENESS_CHECK_INTERVAL": "PT0.3S",
    # Customers' access tokens must outlive the process that issued them.
    "CSMS_JWT_SECRET": "fault-tests-jwt-secret-that-is-long-enough-0123",
}


async def _register(database_url: str, station_ids: list[str]) -> None:
    engine = create_engine(database_url)
    try:
        stations = StationService(create_sessionmaker(engine), clock=SystemClock())
        for station_id in station_ids:
            await stations.register(station_id, password=PASSWORD)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _csms(database_url: str, **options: Any) -> AsyncIterator[CsmsProcess]:
    process = await start_csms(database_url, **options)
    try:
        yield process
    finally:
        if process.process.returncode is None:
            await process.kill()


async def _restart(
    database_url: str, killed: CsmsProcess, env: dict[str, str]
) -> CsmsProcess:
    return await start_csms(
        database_url,
        http_port=killed.http_port,
        ocpp_port=killed.ocpp_port,
        extra_env=env,
    )


async def test_a_killed_csms_loses_and_duplicates_no_charge(database_url: str) -> None:
    stations = [(f"CP-16-{n}", V16) for n in range(3)] + [
        (f"CP-201-{n}", V201) for n in range(3)
    ]
    await _register(database_url, [station_id for station_id, _ in stations])
    first = await start_csms(database_url, extra_env=FAST_RECOVERY)
    second: CsmsProcess | None = None
    try:
        async with httpx.AsyncClient(base_url=first.http_url, timeout=10) as http:
            customer = await register_customer(http)

        async with contextlib.AsyncExitStack() as stack:
            simulated = [
                await stack.enter_async_context(
                    run_station(
                        first.ocpp_url,
                        station_id,
                        PASSWORD,
                        version=version,
                        options=FAULTY,
                    )
                )
                for station_id, version in stations
            ]
            await asyncio.gather(
                *(
                    station.plug_in_and_charge(customer.id_token, connector_id)
                    for station in simulated
                    for connector_id in (1, 2)
                )
            )
            await asyncio.sleep(0.4)

            await first.kill()
            # While the CSMS is gone: every station charges on and queues, and
            # half of the charges end.
            await asyncio.sleep(0.5)
            assert all(not station.online for station in simulated)
            stops = [
                asyncio.create_task(station.stop_locally(1)) for station in simulated
            ]
            await asyncio.sleep(0.3)

            second = await _restart(database_url, first, FAST_RECOVERY)
            await asyncio.wait_for(asyncio.gather(*stops), 10)
            await asyncio.sleep(0.3)
            await asyncio.gather(*(station.stop_locally(2) for station in simulated))
            await asyncio.wait_for(
                asyncio.gather(*(station.drained() for station in simulated)), 10
            )

        charges = [
            charge
            for (station_id, _), station in zip(stations, simulated, strict=True)
            for charge in performed(station_id, station.history)
        ]
        assert len(charges) == 12
        assert_stored_exactly_once(
            charges,
            await stored_records(
                database_url, [station_id for station_id, _ in stations]
            ),
        )
    finally:
        for process in (first, second):
            if process is not None and process.process.returncode is None:
                await process.kill()


@pytest.mark.parametrize("version", [V16, V201])
async def test_a_remote_start_in_flight_at_the_crash_ends_in_one_transaction(
    version: str, database_url: str
) -> None:
    await _register(database_url, ["CP-1"])
    # The car starts drawing a second after the station accepted: the CSMS
    # is dead by then, and learns of the start only from the queue.
    late_start = replace(FAULTY, start_delay=1.0)
    first = await start_csms(database_url, extra_env=FAST_RECOVERY)
    second: CsmsProcess | None = None
    try:
        async with (
            httpx.AsyncClient(base_url=first.http_url, timeout=10) as http,
            run_station(
                first.ocpp_url, "CP-1", PASSWORD, version=version, options=late_start
            ) as simulated,
        ):
            customer = await register_customer(http)
            car_id = await customer.add_car()
            record = await start_charge(customer, car_id=car_id, station_id="CP-1")
            assert record["state"] == "Pending"
            await first.kill()

            second = await _restart(database_url, first, FAST_RECOVERY)
            async with httpx.AsyncClient(base_url=second.http_url, timeout=10) as again:
                customer = _on(again, customer)
                started = await wait_for_session(
                    customer, record["id"], state="Started"
                )
                await simulated.stop_locally(started["connector_id"])
                finished = await wait_for_session(
                    customer, record["id"], state="Finished"
                )

        [charge] = simulated.history
        assert started["transaction_id"] == str(charge.transaction_id)
        assert finished["energy_wh"] == charge.meter_stop_wh - charge.meter_start_wh
        [stored] = await stored_records(database_url, ["CP-1"])
        assert stored.id == record["id"]
    finally:
        for process in (first, second):
            if process is not None and process.process.returncode is None:
                await process.kill()


@pytest.mark.parametrize("version", [V16, V201])
async def test_a_remote_start_never_begun_after_the_crash_fails_clearly(
    version: str, database_url: str
) -> None:
    await _register(database_url, ["CP-1"])
    env = {**FAST_RECOVERY, "CSMS_REMOTE_START_TIMEOUT": "PT2S"}
    never_starts = replace(FAULTY, start_transactions=False)
    first = await start_csms(database_url, extra_env=env)
    second: CsmsProcess | None = None
    try:
        async with (
            httpx.AsyncClient(base_url=first.http_url, timeout=10) as http,
            run_station(
                first.ocpp_url, "CP-1", PASSWORD, version=version, options=never_starts
            ),
        ):
            customer = await register_customer(http)
            car_id = await customer.add_car()
            record = await start_charge(customer, car_id=car_id, station_id="CP-1")
            await first.kill()

            second = await _restart(database_url, first, env)
            async with httpx.AsyncClient(base_url=second.http_url, timeout=10) as again:
                customer = _on(again, customer)
                failed = await wait_for_session(customer, record["id"], state="Failed")

        assert (
            failed["failure_reason"] == "The station did not start the charge in time."
        )
        assert len(await stored_records(database_url, ["CP-1"])) == 1
    finally:
        for process in (first, second):
            if process is not None and process.process.returncode is None:
                await process.kill()


def _on(http: httpx.AsyncClient, customer: Customer) -> Customer:
    """The same customer (and access token) through another client."""
    return replace(customer, http=http)
