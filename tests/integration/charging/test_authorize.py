"""Authorize over OCPP: what the CSMS answers a station for each kind of token,
in each version's own words (1.6 has no Unknown, section 7.2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from csms.app import Csms
from csms.customers.models import Customer as CustomerRow

from conftest import RegisteredStation
from support.customers import register_customer
from support.station_calls import boot
from support.stations import V16, V201, StationClient, connected_station

UNKNOWN_TOKEN = "0000DEADBEEF0000CAFE"


async def _authorize(client: StationClient, id_token: str) -> str:
    answer: Any
    if client.version == V16:
        answer = await client.call(call16.Authorize(id_tag=id_token))
        return str(answer.id_tag_info["status"])
    answer = await client.call(
        call201.Authorize(id_token={"id_token": id_token, "type": "ISO14443"})
    )
    return str(answer.id_token_info["status"])


async def _authorize_once(
    ocpp_url: str, station: RegisteredStation, version: str, id_token: str
) -> str:
    async with connected_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as client:
        await boot(client)
        return await _authorize(client, id_token)


@pytest.mark.parametrize("version", [V16, V201])
async def test_a_customers_token_is_accepted(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)

    status = await _authorize_once(ocpp_url, station, version, customer.id_token)

    assert status == "Accepted"


@pytest.mark.parametrize("version", [V16, V201])
async def test_a_token_is_accepted_whatever_its_case(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)

    status = await _authorize_once(
        ocpp_url, station, version, customer.id_token.lower()
    )

    assert status == "Accepted"


@pytest.mark.parametrize(("version", "expected"), [(V16, "Invalid"), (V201, "Unknown")])
async def test_an_unknown_token_is_refused_in_the_versions_words(
    version: str, expected: str, ocpp_url: str, station: RegisteredStation
) -> None:
    status = await _authorize_once(ocpp_url, station, version, UNKNOWN_TOKEN)

    assert status == expected


@pytest.mark.parametrize("version", [V16, V201])
async def test_a_token_blocked_by_an_operator_is_blocked(
    version: str,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    blocked = await operator_http.post(
        f"/api/v1/operator/id-tokens/{customer.id_token}/block"
    )
    assert blocked.status_code == 200, blocked.text

    status = await _authorize_once(ocpp_url, station, version, customer.id_token)

    assert status == "Blocked"


@pytest.mark.parametrize("version", [V16, V201])
async def test_the_token_of_an_inactive_customer_is_invalid(
    version: str,
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    async with AsyncSession(csms.engine) as session:
        await session.execute(
            update(CustomerRow)
            .where(CustomerRow.id == customer.customer_id)
            .values(active=False)
        )
        await session.commit()

    status = await _authorize_once(ocpp_url, station, version, customer.id_token)

    assert status == "Invalid"
