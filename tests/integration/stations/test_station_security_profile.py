"""A station's security profile: stored at registration, raised later, bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from csms.db.engine import create_engine, create_sessionmaker
from csms.errors import InvalidInput, StationNotFound
from csms.stations.service import StationService

from support.clock import ManualClock


@pytest.fixture
async def stations(
    database_url: str, clock: ManualClock
) -> AsyncIterator[StationService]:
    engine = create_engine(database_url)
    try:
        yield StationService(create_sessionmaker(engine), clock=clock)
    finally:
        await engine.dispose()


async def _profile_of(stations: StationService, station_id: str) -> int:
    credentials = await stations.get_credentials(station_id)
    assert credentials is not None
    return credentials.security_profile


async def test_station_is_registered_at_profile_1_unless_told(
    stations: StationService,
) -> None:
    await stations.register("CP-1")
    await stations.register("CP-3", security_profile=3)

    assert await _profile_of(stations, "CP-1") == 1
    assert await _profile_of(stations, "CP-3") == 3


async def test_security_profile_can_be_raised(stations: StationService) -> None:
    await stations.register("CP-1")

    await stations.set_security_profile("CP-1", 2)

    assert await _profile_of(stations, "CP-1") == 2
    assert (await stations.get("CP-1")).security_profile == 2


@pytest.mark.parametrize("profile", [0, 4])
async def test_unknown_security_profile_is_refused(
    stations: StationService, profile: int
) -> None:
    with pytest.raises(InvalidInput):
        await stations.register("CP-1", security_profile=profile)
    await stations.register("CP-1")
    with pytest.raises(InvalidInput):
        await stations.set_security_profile("CP-1", profile)

    assert await _profile_of(stations, "CP-1") == 1


async def test_security_profile_of_an_unknown_station_cannot_be_set(
    stations: StationService,
) -> None:
    with pytest.raises(StationNotFound):
        await stations.set_security_profile("CP-404", 2)
