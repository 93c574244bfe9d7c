"""What customers may see of stations: live state near a point, nothing more.

These endpoints need no login: where a station is and whether it is free is
public information.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from csms.api.dependencies import Services
from csms.stations.nearby import DEFAULT_LIMIT, DEFAULT_RADIUS_KM, NearbyService
from csms.stations.public_schemas import (
    NearbyStationOut,
    NearbyStations,
    PublicStation,
)

router = APIRouter(prefix="/api/v1/stations", tags=["stations"])


def get_nearby_service(services: Services) -> NearbyService:
    return services.nearby


NearbyDep = Annotated[NearbyService, Depends(get_nearby_service)]


@router.get("/nearby")
async def list_nearby_stations(
    nearby: NearbyDep,
    lat: Annotated[
        float,
        Query(ge=-90, le=90, allow_inf_nan=False, description="Latitude, degrees."),
    ],
    lon: Annotated[
        float,
        Query(ge=-180, le=180, allow_inf_nan=False, description="Longitude, degrees."),
    ],
    radius_km: Annotated[
        float | None,
        Query(
            gt=0,
            allow_inf_nan=False,
            description=(
                f"Search radius in km; {DEFAULT_RADIUS_KM:g} when left out. Above "
                "the configured maximum (CSMS_NEARBY_MAX_RADIUS_KM, 50 by default) "
                "the request is refused with 422, not clamped."
            ),
        ),
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            description=(
                f"At most this many stations; {DEFAULT_LIMIT} when left out. Above "
                "the configured maximum (CSMS_NEARBY_MAX_LIMIT, 100 by default) "
                "the request is refused with 422."
            ),
        ),
    ] = None,
) -> NearbyStations:
    """Stations within the radius of a point, nearest first, with their live state.

    Stations without a location are never listed.
    """
    found = await nearby.find(
        latitude=lat, longitude=lon, radius_km=radius_km, limit=limit
    )
    return NearbyStations(items=[NearbyStationOut.from_found(item) for item in found])


@router.get("/{station_id}")
async def get_public_station(station_id: str, services: Services) -> PublicStation:
    """One station's public view: location, live state and connector statuses."""
    return PublicStation.from_station(await services.stations.get(station_id))
