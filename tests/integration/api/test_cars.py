"""Cars over HTTP: a customer's own cars, and nobody else's.

Every test runs on SQLite and on PostgreSQL, through the real HTTP server.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from csms.app import Csms
from csms.errors import CarNotFound

from support.customers import Customer, register_customer

PROBLEM = "application/problem+json"
CARS = "/api/v1/cars"
ZOE = {
    "make": "Renault",
    "model": "Zoe",
    "plate": "B-EV 1",
    "battery_capacity_kwh": 52.0,
    "connector_type": "CCS2",
}


@pytest.fixture
async def ada(anonymous_http: httpx.AsyncClient) -> Customer:
    return await register_customer(anonymous_http, "ada@example.com")


@pytest.fixture
async def bob(anonymous_http: httpx.AsyncClient) -> Customer:
    return await register_customer(anonymous_http, "bob@example.com")


async def add_car(customer: Customer, **fields: Any) -> dict[str, Any]:
    answer = await customer.post(CARS, json={**ZOE, **fields})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def patch(customer: Customer, car_id: int, body: Any) -> httpx.Response:
    return await customer.http.patch(
        f"{CARS}/{car_id}", json=body, headers=customer.headers
    )


async def delete(customer: Customer, car_id: int) -> httpx.Response:
    return await customer.http.delete(f"{CARS}/{car_id}", headers=customer.headers)


# -- create, read, update, delete -------------------------------------------------


async def test_adding_a_car_answers_201_with_the_car(ada: Customer) -> None:
    answer = await ada.post(CARS, json=ZOE)

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {*ZOE, "id", "created_at"}
    assert {key: body[key] for key in ZOE} == ZOE


async def test_plate_is_stripped_upper_cased_and_its_spaces_collapsed(
    ada: Customer,
) -> None:
    car = await add_car(ada, plate="  b-ev   1 ")

    assert car["plate"] == "B-EV 1"


async def test_optional_fields_may_be_left_out(ada: Customer) -> None:
    answer = await ada.post(CARS, json={"make": "Fiat", "model": "500e", "plate": "X"})

    assert answer.status_code == 201, answer.text
    assert answer.json()["battery_capacity_kwh"] is None
    assert answer.json()["connector_type"] is None


@pytest.mark.parametrize(
    "connector_type", ["Type1", "Type2", "CCS1", "CCS2", "CHAdeMO", "NACS", "GB/T"]
)
async def test_every_common_connector_type_is_accepted(
    ada: Customer, connector_type: str
) -> None:
    car = await add_car(ada, connector_type=connector_type)

    assert car["connector_type"] == connector_type


async def test_list_shows_my_cars_in_the_order_added(ada: Customer) -> None:
    first = await add_car(ada, plate="A 1")
    second = await add_car(ada, plate="A 2")

    answer = await ada.get(CARS)

    assert answer.status_code == 200, answer.text
    assert answer.json() == [first, second]


async def test_get_answers_my_car(ada: Customer) -> None:
    car = await add_car(ada)

    answer = await ada.get(f"{CARS}/{car['id']}")

    assert answer.status_code == 200, answer.text
    assert answer.json() == car


async def test_patch_changes_only_the_given_fields(ada: Customer) -> None:
    car = await add_car(ada)

    answer = await patch(ada, car["id"], {"model": "Zoe E-Tech", "plate": "b ev 2"})

    assert answer.status_code == 200, answer.text
    assert answer.json() == {**car, "model": "Zoe E-Tech", "plate": "B EV 2"}
    assert (await ada.get(f"{CARS}/{car['id']}")).json() == answer.json()


async def test_patch_with_null_clears_an_optional_field(ada: Customer) -> None:
    car = await add_car(ada)

    answer = await patch(ada, car["id"], {"battery_capacity_kwh": None})

    assert answer.status_code == 200, answer.text
    assert answer.json()["battery_capacity_kwh"] is None
    assert answer.json()["connector_type"] == ZOE["connector_type"]


async def test_patch_with_an_unknown_field_is_a_422_problem(ada: Customer) -> None:
    car = await add_car(ada)

    answer = await patch(ada, car["id"], {"colour": "red"})

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert (await ada.get(f"{CARS}/{car['id']}")).json() == car


@pytest.mark.parametrize("field", ["make", "model", "plate"])
async def test_patch_with_null_for_a_required_field_is_a_422_problem(
    ada: Customer, field: str
) -> None:
    car = await add_car(ada)

    answer = await patch(ada, car["id"], {field: None})

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM


async def test_delete_removes_my_car(ada: Customer) -> None:
    car = await add_car(ada)

    answer = await delete(ada, car["id"])

    assert answer.status_code == 204
    assert (await ada.get(f"{CARS}/{car['id']}")).status_code == 404
    assert (await ada.get(CARS)).json() == []


async def test_a_car_that_does_not_exist_is_a_404_problem(ada: Customer) -> None:
    answer = await ada.get(f"{CARS}/999999")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Car not found"


async def test_cars_need_a_customer_token(anonymous_http: httpx.AsyncClient) -> None:
    answer = await anonymous_http.get(CARS)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


# -- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("make", ""),
        ("make", "M" * 101),
        ("model", ""),
        ("model", "M" * 101),
        ("plate", "   "),
        ("plate", "P" * 21),
        ("battery_capacity_kwh", 0),
        ("battery_capacity_kwh", -5),
        ("battery_capacity_kwh", 1000.1),
        ("connector_type", "Schuko"),
    ],
)
async def test_adding_a_car_with_an_invalid_field_is_a_422_problem(
    ada: Customer, field: str, value: Any
) -> None:
    answer = await ada.post(CARS, json={**ZOE, field: value})

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["errors"][0]["location"][:2] == ["body", field]


async def test_battery_capacity_of_1000_kwh_is_accepted(ada: Customer) -> None:
    car = await add_car(ada, battery_capacity_kwh=1000)

    assert car["battery_capacity_kwh"] == 1000


async def test_adding_a_car_for_someone_else_is_refused(
    ada: Customer, bob: Customer
) -> None:
    answer = await ada.post(CARS, json={**ZOE, "customer_id": bob.customer_id})

    assert answer.status_code == 422
    assert (await bob.get(CARS)).json() == []


# -- plates -------------------------------------------------------------------------


async def test_a_plate_i_already_have_is_a_409_problem(ada: Customer) -> None:
    await add_car(ada, plate="B-EV 1")

    answer = await ada.post(CARS, json={**ZOE, "plate": " b-ev  1"})

    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Plate already registered"


async def test_changing_to_a_plate_i_already_have_is_a_409_problem(
    ada: Customer,
) -> None:
    await add_car(ada, plate="A 1")
    car = await add_car(ada, plate="A 2")

    answer = await patch(ada, car["id"], {"plate": "A 1"})

    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM
    assert (await ada.get(f"{CARS}/{car['id']}")).json()["plate"] == "A 2"


async def test_two_customers_may_have_the_same_plate(
    ada: Customer, bob: Customer
) -> None:
    await add_car(ada, plate="B-EV 1")

    answer = await bob.post(CARS, json={**ZOE, "plate": "B-EV 1"})

    assert answer.status_code == 201, answer.text


# -- someone else's car -----------------------------------------------------------


async def test_someone_elses_car_is_not_in_my_list(
    ada: Customer, bob: Customer
) -> None:
    await add_car(bob)

    assert (await ada.get(CARS)).json() == []


async def test_getting_someone_elses_car_is_404_like_a_missing_one(
    ada: Customer, bob: Customer
) -> None:
    car = await add_car(bob)

    answer = await ada.get(f"{CARS}/{car['id']}")
    missing = await ada.get(f"{CARS}/999999")

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == missing.json()["title"]


async def test_patching_someone_elses_car_is_404_and_changes_nothing(
    ada: Customer, bob: Customer
) -> None:
    car = await add_car(bob)

    answer = await patch(ada, car["id"], {"model": "Stolen"})

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert (await bob.get(f"{CARS}/{car['id']}")).json() == car


async def test_deleting_someone_elses_car_is_404_and_keeps_it(
    ada: Customer, bob: Customer
) -> None:
    car = await add_car(bob)

    answer = await delete(ada, car["id"])

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert (await bob.get(f"{CARS}/{car['id']}")).status_code == 200


# -- for the charging service -------------------------------------------------------


async def test_get_car_refuses_someone_elses_car(
    csms: Csms, ada: Customer, bob: Customer
) -> None:
    car = await add_car(bob)

    with pytest.raises(CarNotFound):
        await csms.customers.get_car(ada.customer_id, car["id"])


async def test_get_car_answers_my_car(csms: Csms, ada: Customer) -> None:
    car = await add_car(ada)

    found = await csms.customers.get_car(ada.customer_id, car["id"])

    assert (found.id, found.plate) == (car["id"], car["plate"])


async def test_count_cars_counts_only_mine(
    csms: Csms, ada: Customer, bob: Customer
) -> None:
    await add_car(ada, plate="A 1")
    await add_car(ada, plate="A 2")
    await add_car(bob, plate="B 1")

    assert await csms.customers.count_cars(ada.customer_id) == 2


async def test_only_car_id_is_the_car_of_a_one_car_customer(
    csms: Csms, ada: Customer
) -> None:
    car = await add_car(ada)

    assert await csms.customers.only_car_id(ada.customer_id) == car["id"]


async def test_only_car_id_is_none_with_no_car_or_two_cars(
    csms: Csms, ada: Customer
) -> None:
    assert await csms.customers.only_car_id(ada.customer_id) is None

    await add_car(ada, plate="A 1")
    await add_car(ada, plate="A 2")

    assert await csms.customers.only_car_id(ada.customer_id) is None
