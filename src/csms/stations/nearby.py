"""Nearby search: the stations within a radius of a point, nearest first.

A search runs in two bounded steps on one session:

1. an indexed bounding box picks the candidates — ``latitude BETWEEN`` and
   ``longitude BETWEEN`` on ``ix_stations_location`` — reading only their id and
   coordinates;
2. here, in Python, the exact great-circle distance of each candidate is
   computed, candidates outside the circle are dropped, and the ``limit``
   nearest are kept; only those are then loaded with their state and
   connectors.

The box is exact for a sphere: its longitude span widens with latitude, it
splits in two where it crosses the antimeridian, and it covers every longitude
when the circle contains a pole. Why the distance is computed in Python rather
than in SQL, and what that costs in a dense city, is in
``docs/adr/0002-nearby-search.md``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from csms.errors import InvalidInput
from csms.stations.models import Connector, Station
from csms.stations.service import validate_location
from csms.stations.state import ConnectorStatus, StationState

# The IUGG mean radius of the Earth. A sphere is off the ellipsoid by at most
# ~0.5 %, far below what "which station is nearest" needs.
EARTH_RADIUS_KM = 6371.0088

DEFAULT_RADIUS_KM = 5.0
DEFAULT_LIMIT = 20


@dataclass(frozen=True, slots=True)
class LongitudeRange:
    """Longitudes from ``west`` to ``east``, both inclusive, with west <= east."""

    west: float
    east: float


FULL_CIRCLE = LongitudeRange(-180.0, 180.0)


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """Latitudes from ``south`` to ``north`` and one or two longitude ranges.

    Two ranges when the box crosses the antimeridian; the full circle when the
    search circle contains a pole.
    """

    south: float
    north: float
    longitudes: tuple[LongitudeRange, ...]

    @property
    def spans_all_longitudes(self) -> bool:
        return self.longitudes == (FULL_CIRCLE,)


class _Candidate(NamedTuple):
    """Ordered by distance, then by id: ties come out in a stable order."""

    distance_km: float
    station_id: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class NearbyStation:
    """A station found near a point, with what a customer may see of it."""

    station_id: str
    name: str | None
    latitude: float
    longitude: float
    distance_km: float
    state: StationState
    connectors: tuple[ConnectorStatus, ...]


def haversine_km(
    latitude_a: float, longitude_a: float, latitude_b: float, longitude_b: float
) -> float:
    """The great-circle distance between two points on the mean Earth sphere."""
    phi_a = math.radians(latitude_a)
    phi_b = math.radians(latitude_b)
    half_delta_phi = (phi_b - phi_a) / 2
    # sin² of half the longitude difference is the same for -359° and +1°, so
    # pairs across the antimeridian need no special case.
    half_delta_lambda = math.radians(longitude_b - longitude_a) / 2
    chord = (
        math.sin(half_delta_phi) ** 2
        + math.cos(phi_a) * math.cos(phi_b) * math.sin(half_delta_lambda) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(chord)))


def build_bounding_box(
    latitude: float, longitude: float, *, radius_km: float
) -> BoundingBox:
    """The smallest latitude/longitude box holding every point within the radius."""
    angular_radius = radius_km / EARTH_RADIUS_KM
    delta_latitude = math.degrees(angular_radius)
    south = latitude - delta_latitude
    north = latitude + delta_latitude

    # A circle that reaches a pole holds points of every longitude.
    if south <= -90.0 or north >= 90.0:
        return BoundingBox(max(south, -90.0), min(north, 90.0), (FULL_CIRCLE,))

    # The widest longitude of a spherical cap is reached where a meridian is
    # tangent to it, north of the centre in the northern hemisphere:
    # Δλ = asin(sin r / cos φ). The flat-earth r / cos φ is too narrow there.
    ratio = math.sin(angular_radius) / math.cos(math.radians(latitude))
    if ratio >= 1.0:
        return BoundingBox(south, north, (FULL_CIRCLE,))
    delta_longitude = math.degrees(math.asin(ratio))
    west = longitude - delta_longitude
    east = longitude + delta_longitude

    if east - west >= 360.0:
        return BoundingBox(south, north, (FULL_CIRCLE,))
    ranges: tuple[LongitudeRange, ...]
    if west < -180.0:
        ranges = (LongitudeRange(west + 360.0, 180.0), LongitudeRange(-180.0, east))
    elif east > 180.0:
        ranges = (LongitudeRange(west, 180.0), LongitudeRange(-180.0, east - 360.0))
    else:
        ranges = (LongitudeRange(west, east),)
    return BoundingBox(south, north, ranges)


def build_candidates_query(
    box: BoundingBox,
) -> Select[str, float | None, float | None]:
    """Ids and coordinates of the stations in the box, read through the index.

    Stations without a location have NULL coordinates and never match.
    """
    longitude_ranges = [
        Station.longitude.between(span.west, span.east) for span in box.longitudes
    ]
    query = select(Station.id, Station.latitude, Station.longitude).where(
        Station.latitude.between(box.south, box.north)
    )
    if len(longitude_ranges) == 1:
        return query.where(longitude_ranges[0])
    return query.where(or_(*longitude_ranges))


async def find_nearby(
    session: AsyncSession,
    *,
    latitude: float,
    longitude: float,
    radius_km: float,
    limit: int,
) -> list[NearbyStation]:
    """The ``limit`` stations nearest to the point within ``radius_km``, nearest first.

    Ties in distance are ordered by station id, so pages are stable.
    """
    # Core statements on the session's connection: these are plain rows, and the
    # ORM's per-statement bookkeeping would cost more than the search itself.
    connection = await session.connection()
    box = build_bounding_box(latitude, longitude, radius_km=radius_km)
    rows = (await connection.execute(build_candidates_query(box))).all()

    # The box also holds its corners: measure exactly, keep the nearest inside.
    nearest = heapq.nsmallest(
        limit, _measure_within(rows, latitude, longitude, radius_km=radius_km)
    )
    if not nearest:
        return []

    # Only the stations that will be answered are loaded in full.
    details = await _load_public_details(
        connection, [candidate.station_id for candidate in nearest]
    )
    found = []
    for candidate in nearest:
        detail = details.get(candidate.station_id)
        if detail is None:  # deleted between the two reads
            continue
        name, state, connectors = detail
        found.append(
            NearbyStation(
                station_id=candidate.station_id,
                name=name,
                latitude=candidate.latitude,
                longitude=candidate.longitude,
                distance_km=candidate.distance_km,
                state=state,
                connectors=connectors,
            )
        )
    return found


def _measure_within(
    rows: Iterable[tuple[str, float | None, float | None]],
    latitude: float,
    longitude: float,
    *,
    radius_km: float,
) -> Iterator[_Candidate]:
    for station_id, station_latitude, station_longitude in rows:
        if station_latitude is None or station_longitude is None:
            continue  # the box already excludes them; this keeps the types honest
        distance_km = haversine_km(
            latitude, longitude, station_latitude, station_longitude
        )
        if distance_km <= radius_km:
            yield _Candidate(
                distance_km, station_id, station_latitude, station_longitude
            )


async def _load_public_details(
    connection: AsyncConnection, station_ids: Sequence[str]
) -> dict[str, tuple[str | None, StationState, tuple[ConnectorStatus, ...]]]:
    # One round trip, and the public columns only: nothing private is even read.
    rows = await connection.execute(
        select(
            Station.id,
            Station.name,
            Station.state,
            Connector.evse_id,
            Connector.connector_id,
            Connector.status,
        )
        .outerjoin(Connector, Connector.station_id == Station.id)
        .where(Station.id.in_(station_ids))
        .order_by(Station.id, Connector.evse_id, Connector.connector_id)
    )
    details: dict[str, tuple[str | None, StationState, list[ConnectorStatus]]] = {}
    for station_id, name, state, evse_id, connector_id, status in rows:
        _, _, connectors = details.setdefault(
            station_id, (name, StationState(state), [])
        )
        # A station without connectors comes back once, with NULL connector columns.
        if evse_id is not None and connector_id is not None and status is not None:
            connectors.append(ConnectorStatus(evse_id, connector_id, status))
    return {
        station_id: (name, state, tuple(connectors))
        for station_id, (name, state, connectors) in details.items()
    }


class NearbyService:
    """Nearby search with the operator's caps on radius and result count.

    Asking for more than a cap is refused (:class:`InvalidInput`), never
    silently clamped: a client that asked for 80 km and got 50 km would show
    "no station" where there are some.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_radius_km: float,
        max_limit: int,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.max_radius_km = max_radius_km
        self.max_limit = max_limit

    async def find(
        self,
        *,
        latitude: float,
        longitude: float,
        radius_km: float | None = None,
        limit: int | None = None,
    ) -> list[NearbyStation]:
        """Stations near the point; defaults are 5 km and 20, or the caps if lower."""
        # NaN is refused too: every comparison with it is false.
        validate_location(latitude, longitude)
        if radius_km is None:
            radius_km = min(DEFAULT_RADIUS_KM, self.max_radius_km)
        if limit is None:
            limit = min(DEFAULT_LIMIT, self.max_limit)
        self.validate_radius(radius_km)
        self.validate_limit(limit)

        async with self._sessionmaker() as session:
            return await find_nearby(
                session,
                latitude=latitude,
                longitude=longitude,
                radius_km=radius_km,
                limit=limit,
            )

    def validate_radius(self, radius_km: float) -> None:
        # Written so that NaN fails too.
        if not 0.0 < radius_km <= self.max_radius_km:
            raise InvalidInput(
                f"radius_km must be above 0 and at most {self.max_radius_km:g} km."
            )

    def validate_limit(self, limit: int) -> None:
        if not 1 <= limit <= self.max_limit:
            raise InvalidInput(f"limit must be from 1 to {self.max_limit}.")
