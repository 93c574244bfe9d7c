"""The caps of nearby search are the ones the service was built with."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from csms.errors import InvalidInput
from csms.stations.nearby import NearbyService


@pytest.fixture
def nearby() -> NearbyService:
    # Refused searches never open a session: an unbound sessionmaker will do.
    return NearbyService(async_sessionmaker(), max_radius_km=10.0, max_limit=5)


@pytest.mark.parametrize("radius_km", [10.5, 0.0, -1.0, math.nan])
async def test_radius_outside_the_cap_is_refused(
    nearby: NearbyService, radius_km: float
) -> None:
    with pytest.raises(InvalidInput, match="at most 10 km"):
        await nearby.find(latitude=52.5, longitude=13.4, radius_km=radius_km)


@pytest.mark.parametrize("limit", [6, 0])
async def test_limit_outside_the_cap_is_refused(
    nearby: NearbyService, limit: int
) -> None:
    with pytest.raises(InvalidInput, match="from 1 to 5"):
        await nearby.find(latitude=52.5, longitude=13.4, limit=limit)


@pytest.mark.parametrize(
    ("latitude", "longitude", "message"),
    [
        (90.5, 0.0, "Latitude"),
        (math.nan, 0.0, "Latitude"),
        (0.0, -180.5, "Longitude"),
        (0.0, math.inf, "Longitude"),
    ],
)
async def test_point_off_the_globe_is_refused(
    nearby: NearbyService, latitude: float, longitude: float, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await nearby.find(latitude=latitude, longitude=longitude)
