"""The operator API and a station's security profile."""

from __future__ import annotations

import httpx
import pytest

from csms.app import Csms

STATIONS = "/api/v1/operator/stations"


async def test_created_station_shows_its_security_profile(
    csms: Csms, operator_http: httpx.AsyncClient
) -> None:
    created = await operator_http.post(
        STATIONS, json={"id": "CP-3", "security_profile": 3}
    )

    assert created.status_code == 201, created.text
    assert created.json()["security_profile"] == 3
    shown = (await operator_http.get(f"{STATIONS}/CP-3")).json()
    assert shown["security_profile"] == 3
    credentials = await csms.stations.get_credentials("CP-3")
    assert credentials is not None
    assert credentials.security_profile == 3


async def test_created_station_defaults_to_security_profile_1(
    operator_http: httpx.AsyncClient,
) -> None:
    created = await operator_http.post(STATIONS, json={"id": "CP-1"})

    assert created.status_code == 201, created.text
    assert created.json()["security_profile"] == 1


@pytest.mark.parametrize("profile", [0, 4])
async def test_unknown_security_profile_is_refused_with_422(
    csms: Csms, operator_http: httpx.AsyncClient, profile: int
) -> None:
    created = await operator_http.post(
        STATIONS, json={"id": "CP-X", "security_profile": profile}
    )

    assert created.status_code == 422
    assert await csms.stations.get_credentials("CP-X") is None
