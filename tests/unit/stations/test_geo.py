"""The geometry of nearby search: great-circle distance and the bounding box."""

from __future__ import annotations

import math

import pytest

from csms.stations.nearby import (
    EARTH_RADIUS_KM,
    FULL_CIRCLE,
    BoundingBox,
    LongitudeRange,
    build_bounding_box,
    haversine_km,
)

BRANDENBURG_GATE = (52.516275, 13.377704)
BERLIN_TV_TOWER = (52.520815, 13.409419)

# Centres that exercise the equator, mid and high latitudes, both hemispheres
# and both sides of the antimeridian.
CENTRES = [
    (0.0, 0.0),
    (52.52, 13.4),
    (-33.87, 151.21),
    (60.0, -179.95),
    (-45.0, 179.9),
    (80.0, 10.0),
    (-85.0, -60.0),
    (89.0, 100.0),
]


def destination(
    latitude: float, longitude: float, *, bearing_degrees: float, distance_km: float
) -> tuple[float, float]:
    """The point reached from a start along a great circle (the direct problem)."""
    phi = math.radians(latitude)
    angular = distance_km / EARTH_RADIUS_KM
    bearing = math.radians(bearing_degrees)
    phi_end = math.asin(
        math.sin(phi) * math.cos(angular)
        + math.cos(phi) * math.sin(angular) * math.cos(bearing)
    )
    lambda_end = math.radians(longitude) + math.atan2(
        math.sin(bearing) * math.sin(angular) * math.cos(phi),
        math.cos(angular) - math.sin(phi) * math.sin(phi_end),
    )
    wrapped = (math.degrees(lambda_end) + 540.0) % 360.0 - 180.0
    return math.degrees(phi_end), wrapped


def box_contains(box: BoundingBox, latitude: float, longitude: float) -> bool:
    return box.south <= latitude <= box.north and any(
        span.west <= longitude <= span.east for span in box.longitudes
    )


def test_haversine_matches_hand_computed_distance_in_berlin() -> None:
    # Δφ = 0.004540° = 7.92379e-5 rad, Δλ = 0.031715° = 5.53531e-4 rad,
    # a = sin²(Δφ/2) + cos φ1 · cos φ2 · sin²(Δλ/2)
    #   = 1.56966e-9 + 2.83630e-8 = 2.99327e-8,
    # c = 2 · asin(√a) = 3.46022e-4 rad, d = 6371.0088 km · c = 2.20450 km.
    distance = haversine_km(*BRANDENBURG_GATE, *BERLIN_TV_TOWER)

    assert distance == pytest.approx(2.20450, abs=0.001)


def test_haversine_is_symmetric() -> None:
    there = haversine_km(*BRANDENBURG_GATE, *BERLIN_TV_TOWER)
    back = haversine_km(*BERLIN_TV_TOWER, *BRANDENBURG_GATE)

    assert there == pytest.approx(back, rel=1e-12)


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert haversine_km(10.0, 20.0, 11.0, 20.0) == pytest.approx(111.195, abs=0.001)


def test_haversine_measures_across_the_antimeridian_the_short_way() -> None:
    # 0.02° of longitude on the equator, not 359.98°.
    assert haversine_km(0.0, 179.99, 0.0, -179.99) == pytest.approx(2.224, abs=0.001)


def test_haversine_measures_across_the_pole() -> None:
    # Opposite meridians, 0.01° and 0.02° from the pole: 0.03° of arc.
    assert haversine_km(89.99, 45.0, 89.98, -135.0) == pytest.approx(3.336, abs=0.001)


def test_box_on_the_equator_is_as_wide_as_it_is_tall() -> None:
    box = build_bounding_box(0.0, 0.0, radius_km=111.195)

    assert box.north == pytest.approx(1.0, abs=1e-4)
    assert box.south == pytest.approx(-1.0, abs=1e-4)
    assert box.longitudes[0].west == pytest.approx(-1.0, abs=1e-4)
    assert box.longitudes[0].east == pytest.approx(1.0, abs=1e-4)


def test_box_at_60_degrees_is_twice_as_wide_in_degrees() -> None:
    box = build_bounding_box(60.0, 10.0, radius_km=5.0)

    (span,) = box.longitudes
    height = box.north - box.south
    assert span.east - span.west == pytest.approx(2 * height, rel=1e-4)


def test_box_widens_beyond_flat_earth_estimate_at_high_latitude() -> None:
    # At 80° the widest point of the circle lies north of its centre, where
    # meridians are closer: r / cos(φ) would cut that point off.
    box = build_bounding_box(80.0, 10.0, radius_km=50.0)

    (span,) = box.longitudes
    flat_half_width = math.degrees(50.0 / EARTH_RADIUS_KM) / math.cos(
        math.radians(80.0)
    )
    assert (span.east - 10.0) > flat_half_width


@pytest.mark.parametrize(("latitude", "longitude"), CENTRES)
@pytest.mark.parametrize("radius_km", [0.5, 5.0, 50.0])
def test_box_holds_every_point_of_the_circle(
    latitude: float, longitude: float, radius_km: float
) -> None:
    box = build_bounding_box(latitude, longitude, radius_km=radius_km)

    # Just inside the circle, every 2° of bearing.
    rim = [
        destination(
            latitude,
            longitude,
            bearing_degrees=bearing,
            distance_km=radius_km * (1 - 1e-9),
        )
        for bearing in range(0, 360, 2)
    ]
    outside = [point for point in rim if not box_contains(box, *point)]
    assert outside == []


def test_box_is_tight_to_the_circle() -> None:
    box = build_bounding_box(45.0, 7.0, radius_km=20.0)

    (span,) = box.longitudes
    points = [
        destination(45.0, 7.0, bearing_degrees=tenth / 10, distance_km=20.0)
        for tenth in range(3600)
    ]
    assert max(lat for lat, _ in points) == pytest.approx(box.north, abs=1e-9)
    assert max(lon for _, lon in points) == pytest.approx(span.east, abs=1e-5)


def test_box_crossing_the_antimeridian_from_the_east_splits_in_two() -> None:
    box = build_bounding_box(0.0, 179.99, radius_km=5.0)

    west_part, east_part = box.longitudes
    assert west_part.west == pytest.approx(179.945, abs=1e-3)
    assert west_part.east == 180.0
    assert east_part.west == -180.0
    assert east_part.east == pytest.approx(-179.965, abs=1e-3)


def test_box_crossing_the_antimeridian_from_the_west_splits_in_two() -> None:
    box = build_bounding_box(0.0, -179.99, radius_km=5.0)

    west_part, east_part = box.longitudes
    assert west_part.west == pytest.approx(179.965, abs=1e-3)
    assert west_part.east == 180.0
    assert east_part.west == -180.0
    assert east_part.east == pytest.approx(-179.945, abs=1e-3)


@pytest.mark.parametrize("longitude", [180.0, -180.0])
def test_box_centred_on_the_antimeridian_covers_both_sides(longitude: float) -> None:
    box = build_bounding_box(0.0, longitude, radius_km=5.0)

    assert box_contains(box, 0.0, 179.99)
    assert box_contains(box, 0.0, -179.99)


def test_box_away_from_the_antimeridian_has_one_range() -> None:
    box = build_bounding_box(0.0, 179.9, radius_km=5.0)

    assert len(box.longitudes) == 1


def test_box_reaching_the_north_pole_spans_every_longitude() -> None:
    box = build_bounding_box(89.99, 0.0, radius_km=5.0)

    assert box.spans_all_longitudes
    assert box.longitudes == (FULL_CIRCLE,)
    assert box.north == 90.0


def test_box_reaching_the_south_pole_spans_every_longitude() -> None:
    box = build_bounding_box(-89.98, 120.0, radius_km=5.0)

    assert box.spans_all_longitudes
    assert box.south == -90.0


def test_box_centred_on_the_pole_spans_every_longitude() -> None:
    box = build_bounding_box(90.0, 0.0, radius_km=1.0)

    assert box.spans_all_longitudes
    assert box.south == pytest.approx(90.0 - math.degrees(1.0 / EARTH_RADIUS_KM))


def test_box_short_of_the_pole_keeps_a_longitude_range() -> None:
    box = build_bounding_box(89.0, 100.0, radius_km=50.0)

    (span,) = box.longitudes
    assert box.north < 90.0
    assert span != LongitudeRange(-180.0, 180.0)
    assert 0 < span.east - span.west < 360.0
