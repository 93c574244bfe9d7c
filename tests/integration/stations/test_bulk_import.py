"""Registering a fleet at once: the operator API's bulk call and the CSV parser."""

from __future__ import annotations

import httpx
import pytest

from csms.app import Csms
from csms.stations.bulk import ImportRefused, parse_csv
from csms.stations.credentials import verify_password

from conftest import RegisteredStation


async def test_bulk_call_registers_every_station_and_shows_generated_passwords_once(
    csms: Csms, operator_http: httpx.AsyncClient
) -> None:
    body = {
        "stations": [
            {"id": "BULK-1", "location": {"latitude": 48.1, "longitude": 11.5}},
            {"id": "BULK-2", "name": "Two", "password": "given-password-00002"},
            {"id": "BULK-3", "security_profile": 2},
        ]
    }

    answer = await operator_http.post("/api/v1/operator/stations/bulk", json=body)

    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["imported"] == 3
    assert set(created["passwords"]) == {"BULK-1", "BULK-3"}
    credentials = await csms.stations.get_credentials("BULK-1")
    assert credentials is not None
    assert verify_password(created["passwords"]["BULK-1"], credentials.password_hash)
    given = await csms.stations.get_credentials("BULK-2")
    assert given is not None
    assert verify_password("given-password-00002", given.password_hash)
    assert (await csms.stations.get("BULK-3")).security_profile == 2
    assert (await csms.stations.get("BULK-1")).latitude == 48.1


async def test_bulk_call_with_an_existing_id_imports_nothing(
    csms: Csms, operator_http: httpx.AsyncClient, station: RegisteredStation
) -> None:
    body = {"stations": [{"id": "NEW-1"}, {"id": station.station_id}]}

    answer = await operator_http.post("/api/v1/operator/stations/bulk", json=body)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert station.station_id in answer.json()["detail"]
    assert await csms.stations.get_credentials("NEW-1") is None


async def test_bulk_call_with_the_same_id_twice_imports_nothing(
    csms: Csms, operator_http: httpx.AsyncClient
) -> None:
    body = {"stations": [{"id": "TWICE"}, {"id": "TWICE"}]}

    answer = await operator_http.post("/api/v1/operator/stations/bulk", json=body)

    assert answer.status_code == 422
    assert "also on line 1" in answer.json()["detail"]
    assert await csms.stations.get_credentials("TWICE") is None


def test_csv_rows_are_read_with_their_optional_columns() -> None:
    rows = parse_csv(
        "id,latitude,longitude,name,password\n"
        "A-1,52.5,13.4,Berlin,\n"
        "A-2,,,,given-password-00002\n"
    )

    assert [(r.station_id, r.latitude, r.name, r.password) for r in rows] == [
        ("A-1", 52.5, "Berlin", None),
        ("A-2", None, None, "given-password-00002"),
    ]


def test_csv_with_bad_rows_is_refused_listing_every_line() -> None:
    text = (
        "id,latitude,longitude\nOK-1,1,2\nbad id,1,2\nOK-2,91,2\nOK-3,abc,2\nOK-1,1,2\n"
    )

    with pytest.raises(ImportRefused) as refused:
        parse_csv(text)

    problems = refused.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "line 3",
        "line 4",
        "line 5",
        "line 6",
    ]
    assert "latitude" in problems[2]


def test_csv_without_an_id_header_is_refused() -> None:
    with pytest.raises(ImportRefused):
        parse_csv("A-1,1,2\n")
