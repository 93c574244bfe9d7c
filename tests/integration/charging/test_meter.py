"""Meter values during a charge: 1.6 MeterValues and 2.0.1 TransactionEvent
Updated move the record's meter forwards, never backwards; the station shows
Charging while it charges."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.charging.meter import parse_timestamp
from csms.simulator.station import (
    V16,
    V201,
    Charge,
    SimulatedStation,
    SimulatedStation16,
    run_station,
)

from conftest import RegisteredStation
from support.charging import (
    FAST,
    QUIET,
    start_charge,
    wait_for_session,
    wait_for_station_state,
)
from support.customers import Customer, register_customer
from support.polling import eventually

VERSIONS = pytest.mark.parametrize("version", [V16, V201])


def _iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


async def _send_energy(
    simulated: SimulatedStation, charge: Charge, *, wh: int, at: datetime
) -> None:
    """Report one energy register reading for ``charge``, as the station's
    version does during a transaction."""
    if isinstance(simulated, SimulatedStation16):
        await simulated.call(
            call16.MeterValues(
                connector_id=charge.connector_id,
                transaction_id=charge.transaction_id,
                meter_value=[
                    {
                        "timestamp": _iso(at),
                        "sampledValue": [
                            {
                                "value": str(wh),
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            }
                        ],
                    }
                ],
            )
        )
        return
    seq_no = charge.seq_no
    charge.seq_no += 1
    await simulated.call(
        call201.TransactionEvent(
            event_type="Updated",
            timestamp=_iso(at),
            trigger_reason="MeterValuePeriodic",
            seq_no=seq_no,
            transaction_info={"transaction_id": charge.transaction_id},
            meter_value=[
                {
                    "timestamp": _iso(at),
                    "sampled_value": [
                        {
                            "value": wh,
                            "measurand": "Energy.Active.Import.Register",
                            "unit_of_measure": {"unit": "Wh"},
                        }
                    ],
                }
            ],
        )
    )


async def _started_charge(
    customer: Customer, station: RegisteredStation
) -> dict[str, Any]:
    car_id = await customer.add_car()
    record = await start_charge(customer, car_id=car_id, station_id=station.station_id)
    return await wait_for_session(customer, record["id"], state="Started")


@VERSIONS
async def test_a_meter_reading_updates_energy_last_meter_and_its_time(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=QUIET
    ) as simulated:
        started = await _started_charge(customer, station)
        read_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        # The station learns its transaction id when it reads the CSMS answer.
        await asyncio.wait_for(simulated.started.wait(), 10)
        charge = simulated.charges[started["connector_id"]]
        await _send_energy(simulated, charge, wh=1234, at=read_at)

        updated = await wait_for_session(customer, started["id"], state="Started")

    assert updated["meter_start_wh"] == 0
    assert updated["meter_last_wh"] == 1234
    assert updated["energy_wh"] == 1234
    assert updated["energy_kwh"] == 1.234
    assert parse_timestamp(updated["last_meter_at"]) == read_at


@VERSIONS
async def test_a_late_older_reading_does_not_move_the_meter_backwards(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=QUIET
    ) as simulated:
        started = await _started_charge(customer, station)
        newer = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        # The station learns its transaction id when it reads the CSMS answer.
        await asyncio.wait_for(simulated.started.wait(), 10)
        charge = simulated.charges[started["connector_id"]]
        await _send_energy(simulated, charge, wh=2000, at=newer)
        await _send_energy(
            simulated,
            charge,
            wh=500,
            at=newer - timedelta(minutes=2),
        )

        record = await wait_for_session(customer, started["id"], state="Started")

    assert record["meter_last_wh"] == 2000
    assert record["energy_wh"] == 2000
    assert parse_timestamp(record["last_meter_at"]) == newer


@VERSIONS
async def test_a_late_reading_after_the_stop_leaves_the_final_meter_alone(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=QUIET
    ) as simulated:
        started = await _started_charge(customer, station)
        # The station learns its transaction id when it reads the CSMS answer.
        await asyncio.wait_for(simulated.started.wait(), 10)
        charge = simulated.charges[started["connector_id"]]
        now = datetime.now(UTC).replace(microsecond=0)
        await _send_energy(simulated, charge, wh=1000, at=now - timedelta(minutes=2))
        charge.meter_wh = 3000
        await simulated.stop_locally(charge.connector_id)
        await wait_for_session(customer, started["id"], state="Finished")

        # Taken before the stop, delivered after it (a queued message).
        await _send_energy(simulated, charge, wh=2000, at=now - timedelta(minutes=1))
        record = await wait_for_session(customer, started["id"], state="Finished")

    assert record["meter_stop_wh"] == 3000
    assert record["meter_last_wh"] == 3000
    assert record["energy_wh"] == 3000


@VERSIONS
async def test_the_energy_rises_with_the_stations_periodic_meter_values(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    meter_reports: list[int] = []

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ) as simulated:
        simulated.on_event = lambda event, details: (
            meter_reports.append(details["wh"]) if event == "meter" else None
        )
        started = await _started_charge(customer, station)

        async def two_reports_counted() -> bool:
            record = await wait_for_session(customer, started["id"], state="Started")
            return (
                len(meter_reports) >= 2 and record["meter_last_wh"] in meter_reports[1:]
            )

        await eventually(two_reports_counted)
        record = await wait_for_session(customer, started["id"], state="Started")

    assert record["energy_wh"] == record["meter_last_wh"] - record["meter_start_wh"]
    assert record["energy_wh"] > 0
    assert record["last_meter_at"] is not None


@VERSIONS
async def test_the_station_is_charging_during_a_charge_and_available_after(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)

    async with run_station(
        ocpp_url, station.station_id, station.password, version=version, options=FAST
    ):
        started = await _started_charge(customer, station)
        await wait_for_station_state(operator_http, station.station_id, "Charging")

        stop = await customer.post(f"/api/v1/charging-sessions/{started['id']}/stop")
        assert stop.status_code == 202, stop.text
        await wait_for_session(customer, started["id"], state="Finished")

        await wait_for_station_state(operator_http, station.station_id, "Available")
