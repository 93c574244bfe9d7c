"""Short-hands for what a well-behaved station says, through the ocpp package."""

from __future__ import annotations

from typing import Any

import httpx
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from support.stations import V16, StationClient

STATUS_TIME = "2024-05-01T12:00:00Z"


async def boot(client: StationClient) -> None:
    if client.version == V16:
        answer = await client.call(
            call16.BootNotification(charge_point_vendor="Acme", charge_point_model="V1")
        )
    else:
        answer = await client.call(
            call201.BootNotification(
                charging_station={"vendor_name": "Acme", "model": "V2"},
                reason="PowerUp",
            )
        )
    assert answer.status == "Accepted"


async def report_status_16(
    client: StationClient, connector_id: int, status: str
) -> None:
    await client.call(
        call16.StatusNotification(
            connector_id=connector_id,
            error_code="NoError" if status != "Faulted" else "OtherError",
            status=status,
        ),
        suppress=False,
    )


async def report_status_201(
    client: StationClient, evse_id: int, connector_id: int, status: str
) -> None:
    await client.call(
        call201.StatusNotification(
            timestamp=STATUS_TIME,
            connector_status=status,
            evse_id=evse_id,
            connector_id=connector_id,
        ),
        suppress=False,
    )


async def station_view(http: httpx.AsyncClient, station_id: str) -> dict[str, Any]:
    """What the operator API says about a station."""
    response = await http.get(f"/api/v1/operator/stations/{station_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
