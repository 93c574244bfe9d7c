"""Public station endpoints: nearby search and one station's public view.

Every test runs on SQLite and on PostgreSQL, through the real HTTP server, as a
caller without any credentials.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Table, insert, text

from csms.app import Csms
from csms.db.engine import create_engine
from csms.stations.models import Station
from csms.stations.nearby import build_bounding_box, build_candidates_query
from csms.stations.service import BootInfo

NEARBY = "/api/v1/stations/nearby"
PROBLEM = "application/problem+json"

BRANDENBURG_GATE = (52.516275, 13.377704)
BERLIN_TV_TOWER = (52.520815, 13.409419)
# Worked out by hand in tests/unit/stations/test_geo.py.
GATE_TO_TOWER_KM = 2.20450
POTSDAM = (52.390600, 13.064500)  # ~25 km from the gate

PUBLIC_STATION_KEYS = {"id", "name", "location", "state", "connectors"}
NEARBY_STATION_KEYS = PUBLIC_STATION_KEYS | {"distance_km"}


async def register_at(
    csms: Csms, station_id: str, location: tuple[float, float] | None
) -> None:
    latitude, longitude = location if location is not None else (None, None)
    await csms.stations.register(
        station_id,
        password="station-password-0001",
        name=f"Station {station_id}",
        latitude=latitude,
        longitude=longitude,
    )


async def search(
    client: httpx.AsyncClient, location: tuple[float, float], **params: object
) -> httpx.Response:
    latitude, longitude = location
    return await client.get(
        NEARBY, params={"lat": latitude, "lon": longitude, **params}
    )


async def found_ids(
    client: httpx.AsyncClient, location: tuple[float, float], **params: object
) -> list[str]:
    response = await search(client, location, **params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# -- ordering, distance, radius, limit -------------------------------------------------


async def test_nearby_lists_nearest_first(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "TOWER", BERLIN_TV_TOWER)
    await register_at(csms, "GATE", BRANDENBURG_GATE)

    assert await found_ids(anonymous_http, BRANDENBURG_GATE) == ["GATE", "TOWER"]


async def test_nearby_reports_great_circle_distance_to_the_metre(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "TOWER", BERLIN_TV_TOWER)

    response = await search(anonymous_http, BRANDENBURG_GATE)

    (item,) = response.json()["items"]
    assert item["distance_km"] == pytest.approx(GATE_TO_TOWER_KM, abs=0.001)
    assert item["distance_km"] == round(item["distance_km"], 3)


async def test_radius_excludes_stations_beyond_it(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "TOWER", BERLIN_TV_TOWER)
    await register_at(csms, "POTSDAM", POTSDAM)

    assert await found_ids(anonymous_http, BRANDENBURG_GATE, radius_km=5) == ["TOWER"]


async def test_larger_radius_reaches_further_stations(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "POTSDAM", POTSDAM)

    assert await found_ids(anonymous_http, BRANDENBURG_GATE, radius_km=30) == [
        "POTSDAM"
    ]


async def test_limit_keeps_only_the_nearest(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    # Due east of the gate, 0.01° of longitude (~680 m) apart.
    for step in (3, 1, 4, 2):
        latitude, longitude = BRANDENBURG_GATE
        await register_at(csms, f"EAST-{step}", (latitude, longitude + step / 100))

    assert await found_ids(anonymous_http, BRANDENBURG_GATE, limit=2) == [
        "EAST-1",
        "EAST-2",
    ]


async def test_limit_defaults_to_twenty(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    latitude, longitude = BRANDENBURG_GATE
    for index in range(21):
        await register_at(csms, f"CP-{index:02d}", (latitude, longitude + index / 1000))

    assert len(await found_ids(anonymous_http, BRANDENBURG_GATE)) == 20


async def test_radius_defaults_to_five_km(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    latitude, longitude = BRANDENBURG_GATE
    # 0.04° and 0.05° of latitude: 4.4 km and 5.6 km north.
    await register_at(csms, "NEAR", (latitude + 0.04, longitude))
    await register_at(csms, "FAR", (latitude + 0.05, longitude))

    assert await found_ids(anonymous_http, BRANDENBURG_GATE) == ["NEAR"]


async def test_nothing_nearby_answers_an_empty_list(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "POTSDAM", POTSDAM)

    response = await search(anonymous_http, (0.0, 0.0))

    assert response.status_code == 200
    assert response.json() == {"items": []}


async def test_stations_without_location_are_never_listed(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "NOWHERE", None)
    await register_at(csms, "GATE", BRANDENBURG_GATE)

    assert await found_ids(
        anonymous_http, BRANDENBURG_GATE, radius_km=csms.settings.nearby_max_radius_km
    ) == ["GATE"]


# -- across the antimeridian and the pole ----------------------------------------------


@pytest.mark.parametrize("longitude", [180.0, -180.0])
async def test_stations_on_both_sides_of_the_antimeridian_are_found(
    csms: Csms, anonymous_http: httpx.AsyncClient, longitude: float
) -> None:
    await register_at(csms, "EAST-OF-DATELINE", (0.0, -179.99))
    await register_at(csms, "WEST-OF-DATELINE", (0.0, 179.99))

    response = await search(anonymous_http, (0.0, longitude))

    items = response.json()["items"]
    assert {item["id"] for item in items} == {"EAST-OF-DATELINE", "WEST-OF-DATELINE"}
    # 0.01° of longitude on the equator, the short way round.
    assert [item["distance_km"] for item in items] == [1.112, 1.112]


async def test_station_across_the_antimeridian_is_measured_the_short_way(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "FIJI-EAST", (-17.0, -179.99))

    response = await search(anonymous_http, (-17.0, 179.99))

    (item,) = response.json()["items"]
    assert item["distance_km"] == pytest.approx(2.127, abs=0.001)


async def test_station_near_the_north_pole_is_found_across_it(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "POLAR", (89.99, 45.0))

    # From the opposite meridian: the way is over the pole, 0.03° of arc.
    response = await search(anonymous_http, (89.98, -135.0))

    (item,) = response.json()["items"]
    assert item["id"] == "POLAR"
    assert item["distance_km"] == pytest.approx(3.336, abs=0.001)


async def test_station_near_the_north_pole_is_found_from_the_pole(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "POLAR", (89.99, 45.0))

    assert await found_ids(anonymous_http, (90.0, 0.0)) == ["POLAR"]


# -- what is shown ---------------------------------------------------------------------


async def test_nearby_items_carry_only_public_fields(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "GATE", BRANDENBURG_GATE)
    await csms.stations.update_connector(
        "GATE", evse_id=1, connector_id=1, status="Available"
    )

    response = await search(anonymous_http, BRANDENBURG_GATE)

    (item,) = response.json()["items"]
    assert set(response.json()) == {"items"}
    assert set(item) == NEARBY_STATION_KEYS
    assert set(item["location"]) == {"latitude", "longitude"}
    assert set(item["connectors"][0]) == {"evse_id", "connector_id", "status"}


async def test_nearby_item_shows_name_and_location(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "GATE", BRANDENBURG_GATE)

    (item,) = (await search(anonymous_http, BRANDENBURG_GATE)).json()["items"]

    assert item["name"] == "Station GATE"
    assert item["location"] == {
        "latitude": BRANDENBURG_GATE[0],
        "longitude": BRANDENBURG_GATE[1],
    }
    assert item["distance_km"] == 0.0


async def test_station_that_never_connected_is_unavailable(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "GATE", BRANDENBURG_GATE)

    (item,) = (await search(anonymous_http, BRANDENBURG_GATE)).json()["items"]

    assert item["state"] == "Unavailable"


async def test_connected_and_booted_station_is_available(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "GATE", BRANDENBURG_GATE)
    await csms.stations.mark_connected("GATE", ocpp_version="ocpp1.6")
    await csms.stations.accept_boot(
        "GATE", BootInfo("Acme", "Volt-1", serial_number=None, firmware_version=None)
    )
    await csms.stations.update_connector(
        "GATE", evse_id=1, connector_id=1, status="Available"
    )

    (item,) = (await search(anonymous_http, BRANDENBURG_GATE)).json()["items"]

    assert item["state"] == "Available"


async def test_station_with_a_charging_connector_is_charging(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "GATE", BRANDENBURG_GATE)
    await csms.stations.update_connector(
        "GATE", evse_id=1, connector_id=1, status="Charging"
    )

    (item,) = (await search(anonymous_http, BRANDENBURG_GATE)).json()["items"]

    assert item["state"] == "Charging"


async def test_nearby_lists_connector_statuses_in_order(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "GATE", BRANDENBURG_GATE)
    await csms.stations.update_connector(
        "GATE", evse_id=2, connector_id=1, status="Faulted"
    )
    await csms.stations.update_connector(
        "GATE", evse_id=1, connector_id=1, status="Charging"
    )

    (item,) = (await search(anonymous_http, BRANDENBURG_GATE)).json()["items"]

    assert item["connectors"] == [
        {"evse_id": 1, "connector_id": 1, "status": "Charging"},
        {"evse_id": 2, "connector_id": 1, "status": "Faulted"},
    ]


# -- refused requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": 91, "lon": 13}, "lat"),
        ({"lat": -90.5, "lon": 13}, "lat"),
        ({"lat": 52, "lon": -181}, "lon"),
        ({"lat": 52, "lon": 180.5}, "lon"),
        ({"lat": "abc", "lon": 13}, "lat"),
        ({"lat": 52, "lon": "nan"}, "lon"),
        ({"lat": 52}, "lon"),
        ({"lon": 13}, "lat"),
        ({"lat": 52, "lon": 13, "radius_km": 0}, "radius_km"),
        ({"lat": 52, "lon": 13, "limit": 0}, "limit"),
        ({"lat": 52, "lon": 13, "limit": "many"}, "limit"),
    ],
    ids=[
        "lat-91",
        "lat-minus-90.5",
        "lon-minus-181",
        "lon-180.5",
        "lat-abc",
        "lon-nan",
        "lon-missing",
        "lat-missing",
        "radius-zero",
        "limit-zero",
        "limit-not-a-number",
    ],
)
async def test_bad_query_is_refused_with_a_problem_naming_the_parameter(
    csms: Csms,
    anonymous_http: httpx.AsyncClient,
    params: dict[str, object],
    field: str,
) -> None:
    response = await anonymous_http.get(NEARBY, params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 422
    assert [error["location"] for error in body["errors"]] == [["query", field]]


async def test_radius_over_the_cap_is_refused_not_clamped(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    cap = csms.settings.nearby_max_radius_km

    response = await search(anonymous_http, BRANDENBURG_GATE, radius_km=cap + 0.1)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == (
        f"radius_km must be above 0 and at most {cap:g} km."
    )


async def test_radius_at_the_cap_is_accepted(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    cap = csms.settings.nearby_max_radius_km

    response = await search(anonymous_http, BRANDENBURG_GATE, radius_km=cap)

    assert response.status_code == 200


async def test_limit_over_the_cap_is_refused(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    cap = csms.settings.nearby_max_limit

    response = await search(anonymous_http, BRANDENBURG_GATE, limit=cap + 1)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == f"limit must be from 1 to {cap}."


# -- one station's public view ---------------------------------------------------------


async def test_public_station_carries_only_public_fields(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "GATE", BRANDENBURG_GATE)
    await csms.stations.update_connector(
        "GATE", evse_id=1, connector_id=1, status="Charging"
    )

    response = await anonymous_http.get("/api/v1/stations/GATE")

    assert response.status_code == 200
    assert response.json() == {
        "id": "GATE",
        "name": "Station GATE",
        "location": {
            "latitude": BRANDENBURG_GATE[0],
            "longitude": BRANDENBURG_GATE[1],
        },
        "state": "Charging",
        "connectors": [{"evse_id": 1, "connector_id": 1, "status": "Charging"}],
    }


async def test_public_station_without_location_shows_null_location(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register_at(csms, "NOWHERE", None)

    response = await anonymous_http.get("/api/v1/stations/NOWHERE")

    assert set(response.json()) == PUBLIC_STATION_KEYS
    assert response.json()["location"] is None


async def test_unknown_public_station_is_a_404_problem(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    response = await anonymous_http.get("/api/v1/stations/NO-SUCH-STATION")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["title"] == "Station not found"


# -- the plan uses the index -----------------------------------------------------------


async def explain_candidates_query(
    database_url: str, *, latitude: float, longitude: float
) -> str:
    """Fill the table with stations spread over the globe, ANALYZE, EXPLAIN."""
    engine = create_engine(database_url)
    try:
        table = Station.__table__
        assert isinstance(table, Table)
        generator = random.Random(7)
        now = datetime.now(UTC)
        rows = [
            {
                "id": f"SPREAD-{index:05d}",
                "latitude": generator.uniform(-60.0, 70.0),
                "longitude": generator.uniform(-180.0, 180.0),
                "password_hash": "not-a-real-hash",
                "security_profile": 1,
                "state": "Unavailable",
                "online": False,
                "created_at": now,
                "updated_at": now,
            }
            for index in range(4000)
        ]
        box = build_bounding_box(latitude, longitude, radius_km=5.0)
        sql = build_candidates_query(box).compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True}
        )
        explain = (
            "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        )
        async with engine.begin() as connection:
            await connection.execute(insert(table), rows)
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
            plan = (await connection.execute(text(explain + str(sql)))).all()
    finally:
        await engine.dispose()
    return "\n".join(" ".join(str(column) for column in row) for row in plan)


async def test_nearby_candidates_are_read_through_the_location_index(
    database_url: str,
) -> None:
    plan = await explain_candidates_query(
        database_url, latitude=BRANDENBURG_GATE[0], longitude=BRANDENBURG_GATE[1]
    )

    assert "ix_stations_location" in plan
    assert "Seq Scan" not in plan
    assert "SCAN stations" not in plan


async def test_box_split_by_the_antimeridian_is_read_through_the_location_index(
    database_url: str,
) -> None:
    plan = await explain_candidates_query(database_url, latitude=0.0, longitude=180.0)

    assert "ix_stations_location" in plan
    assert "Seq Scan" not in plan
    assert "SCAN stations" not in plan
