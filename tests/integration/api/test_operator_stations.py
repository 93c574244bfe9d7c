"""The operator API for stations: register, list, inspect, rotate passwords."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from csms.app import Csms

from conftest import RegisteredStation
from support.station_calls import boot
from support.stations import V16, basic_auth, connected_station, open_socket

STATIONS = "/api/v1/operator/stations"
PROBLEM = "application/problem+json"


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


async def test_created_station_gets_a_password_shown_once_that_connects(
    csms: Csms, ocpp_url: str, operator_http: httpx.AsyncClient
) -> None:
    created = await operator_http.post(STATIONS, json={"id": "CP-NEW"})
    assert created.status_code == 201, created.text
    password = created.json()["password"]

    shown_later = (await operator_http.get(f"{STATIONS}/CP-NEW")).json()
    listed = (await operator_http.get(STATIONS)).json()

    assert 16 <= len(password) <= 40
    assert "password" not in shown_later
    assert all("password" not in item for item in listed["items"])
    async with connected_station(ocpp_url, "CP-NEW", password) as cp:
        await boot(cp)
        assert csms.gateway.is_connected("CP-NEW")


async def test_created_station_with_a_given_password_connects_with_it(
    csms: Csms, ocpp_url: str, operator_http: httpx.AsyncClient
) -> None:
    given = "a-given-password-0001"
    created = await operator_http.post(
        STATIONS,
        json={
            "id": "CP-GIVEN",
            "password": given,
            "name": "Depot",
            "location": {"latitude": 48.1, "longitude": 11.5},
        },
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["password"] is None
    assert body["name"] == "Depot"
    assert body["location"] == {"latitude": 48.1, "longitude": 11.5}
    assert body["state"] == "Unavailable"
    async with connected_station(ocpp_url, "CP-GIVEN", given):
        assert csms.gateway.is_connected("CP-GIVEN")


async def test_registering_an_existing_id_is_a_409_problem(
    station: RegisteredStation, operator_http: httpx.AsyncClient
) -> None:
    response = await operator_http.post(STATIONS, json={"id": station.station_id})

    problem = _assert_problem(response, 409)
    assert station.station_id in problem["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"id": "CP 1"},
        {"id": "CP:1"},
        {"id": "CP-1", "location": {"latitude": 52.5}},
        {"id": "CP-1", "location": {"latitude": 91, "longitude": 13.4}},
        {"id": "CP-1", "password": "too-short"},
    ],
    ids=["space", "colon", "half-location", "latitude-91", "short-password"],
)
async def test_invalid_station_is_a_422_problem(
    csms: Csms, operator_http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await operator_http.post(STATIONS, json=body)

    problem = _assert_problem(response, 422)
    assert problem["errors"]
    assert list(await csms.stations.list_stations()) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
    ],
    ids=["no-token", "wrong-token"],
)
async def test_request_without_a_valid_operator_token_is_a_401_problem(
    anonymous_http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await anonymous_http.get(STATIONS, headers=headers)

    _assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_list_filters_by_state(
    csms: Csms, ocpp_url: str, operator_http: httpx.AsyncClient
) -> None:
    password = "shared-password-00001"
    for station_id in ("CP-A", "CP-B", "CP-C"):
        await csms.stations.register(station_id, password=password)

    async with connected_station(ocpp_url, "CP-B", password) as cp:
        await boot(cp)
        available = (
            await operator_http.get(STATIONS, params={"state": "Available"})
        ).json()
        unavailable = (
            await operator_http.get(STATIONS, params={"state": "Unavailable"})
        ).json()

    assert [item["id"] for item in available["items"]] == ["CP-B"]
    assert [item["id"] for item in unavailable["items"]] == ["CP-A", "CP-C"]


async def test_list_pages_by_id_with_next_after(
    csms: Csms, operator_http: httpx.AsyncClient
) -> None:
    for station_id in ("CP-E", "CP-A", "CP-D", "CP-B", "CP-C"):
        await csms.stations.register(station_id)

    pages: list[list[str]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if after is not None:
            params["after"] = after
        page = (await operator_http.get(STATIONS, params=params)).json()
        pages.append([item["id"] for item in page["items"]])
        after = page["next_after"]
        if after is None:
            break

    assert [station_id for page in pages for station_id in page] == [
        "CP-A",
        "CP-B",
        "CP-C",
        "CP-D",
        "CP-E",
    ]
    assert pages[:3] == [["CP-A", "CP-B"], ["CP-C", "CP-D"], ["CP-E"]]


async def test_unknown_station_is_a_404_problem(
    csms: Csms, operator_http: httpx.AsyncClient
) -> None:
    response = await operator_http.get(f"{STATIONS}/CP-404")

    problem = _assert_problem(response, 404)
    assert "CP-404" in problem["detail"]


async def test_rotated_password_replaces_the_old_one_at_the_handshake(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    operator_http: httpx.AsyncClient,
) -> None:
    response = await operator_http.post(
        f"{STATIONS}/{station.station_id}/password", json={}
    )
    assert response.status_code == 200, response.text
    new_password = response.json()["password"]

    with pytest.raises(InvalidStatus) as refused:
        await open_socket(
            f"{ocpp_url}/{station.station_id}",
            headers=basic_auth(station.station_id, station.password),
            subprotocols=[V16],
        )
    assert refused.value.response.status_code == 401
    assert new_password != station.password
    async with connected_station(ocpp_url, station.station_id, new_password):
        assert csms.gateway.is_connected(station.station_id)


async def test_rotating_the_password_of_an_unknown_station_is_a_404_problem(
    csms: Csms, operator_http: httpx.AsyncClient
) -> None:
    response = await operator_http.post(f"{STATIONS}/CP-404/password", json={})

    _assert_problem(response, 404)


async def test_openapi_document_and_docs_are_served(
    anonymous_http: httpx.AsyncClient,
) -> None:
    schema = await anonymous_http.get("/openapi.json")
    docs = await anonymous_http.get("/docs")

    assert schema.status_code == 200
    assert STATIONS in schema.json()["paths"]
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
