"""Charge Detail Records for operators: the customer and flagged filters, and
the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import httpx
from sqlalchemy import update

from csms.app import Csms
from csms.charging.export import CSV_COLUMNS
from csms.charging.models import ChargeDetailRecord
from csms.db.engine import create_sessionmaker
from csms.simulator.station import run_station

from conftest import RegisteredStation
from support.charging import (
    FAST,
    OPERATOR_RECORDS,
    get_session,
    start_charge,
    wait_for_session,
)
from support.customers import Customer, register_customer
from support.polling import eventually

CSV_EXPORT = OPERATOR_RECORDS + ".csv"


async def _finished_charge(
    customer: Customer, ocpp_url: str, station: RegisteredStation
) -> str:
    car_id = await customer.add_car(plate=f"B-{customer.customer_id}")
    async with run_station(
        ocpp_url, station.station_id, station.password, options=FAST
    ):
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        await wait_for_session(customer, record["id"], state="Started")

        async def charged() -> bool:
            session = await get_session(customer, record["id"])
            return bool(session["energy_wh"])

        await eventually(charged)
        stop = await customer.post(f"/api/v1/charging-sessions/{record['id']}/stop")
        assert stop.status_code == 202, stop.text
        await wait_for_session(customer, record["id"], state="Finished")
    return str(record["id"])


async def _flag(csms: Csms, record_id: str) -> None:
    # A flag is what the charging rules set on suspect data; set one directly.
    async with create_sessionmaker(csms.engine)() as session:
        await session.execute(
            update(ChargeDetailRecord)
            .where(ChargeDetailRecord.id == record_id)
            .values(flags=["meter_went_backwards"])
        )
        await session.commit()


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_the_csv_export_has_a_row_per_record_with_its_energy(
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    record_id = await _finished_charge(customer, ocpp_url, station)

    answer = await operator_http.get(CSV_EXPORT)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.text.splitlines()[0] == ",".join(CSV_COLUMNS)
    [row] = _rows(answer.text)
    assert row["id"] == record_id
    assert row["state"] == "Finished"
    assert row["station_id"] == station.station_id
    assert row["customer_id"] == str(customer.customer_id)
    assert int(row["energy_wh"]) > 0
    assert float(row["energy_kwh"]) == int(row["energy_wh"]) / 1000
    assert datetime.fromisoformat(row["stopped_at"]).tzinfo is not None


async def test_the_csv_export_applies_the_filters(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    first = await register_customer(anonymous_http, "first@example.com")
    second = await register_customer(anonymous_http, "second@example.com")
    first_record = await _finished_charge(first, ocpp_url, station)
    second_record = await _finished_charge(second, ocpp_url, station)
    await _flag(csms, second_record)

    by_customer = await operator_http.get(
        CSV_EXPORT, params={"customer_id": first.customer_id}
    )
    flagged = await operator_http.get(CSV_EXPORT, params={"flagged": "true"})
    clean = await operator_http.get(CSV_EXPORT, params={"flagged": "false"})
    future = await operator_http.get(
        CSV_EXPORT, params={"since": datetime(2999, 1, 1, tzinfo=UTC).isoformat()}
    )
    failed = await operator_http.get(CSV_EXPORT, params={"state": "Failed"})

    assert [row["id"] for row in _rows(by_customer.text)] == [first_record]
    assert [row["id"] for row in _rows(flagged.text)] == [second_record]
    assert _rows(flagged.text)[0]["flags"] == "meter_went_backwards"
    assert [row["id"] for row in _rows(clean.text)] == [first_record]
    assert _rows(future.text) == []
    assert _rows(failed.text) == []


async def test_the_record_list_filters_by_customer_and_flag(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    first = await register_customer(anonymous_http, "first@example.com")
    second = await register_customer(anonymous_http, "second@example.com")
    await _finished_charge(first, ocpp_url, station)
    second_record = await _finished_charge(second, ocpp_url, station)
    await _flag(csms, second_record)

    mine = await operator_http.get(
        OPERATOR_RECORDS, params={"customer_id": second.customer_id, "flagged": True}
    )

    assert mine.status_code == 200, mine.text
    assert [item["id"] for item in mine.json()["items"]] == [second_record]


async def test_the_csv_export_needs_an_operator(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    answer = await anonymous_http.get(CSV_EXPORT)

    assert answer.status_code == 401
