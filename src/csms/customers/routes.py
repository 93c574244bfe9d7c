"""Customer endpoints: registration, login, profile, id tokens, cars.

Also the operator's block / unblock of id tokens, which belongs to this domain.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from csms.api.dependencies import CustomerDep, OperatorDep, RowId, Services
from csms.customers.schemas import (
    AccessTokenOut,
    CarCreate,
    CarOut,
    CarUpdate,
    CustomerCreate,
    CustomerOut,
    IdTokenOut,
    OperatorIdTokenOut,
)

router = APIRouter(prefix="/api/v1", tags=["customers"])


@router.post("/customers", status_code=status.HTTP_201_CREATED)
async def register_customer(body: CustomerCreate, services: Services) -> CustomerOut:
    """Open an account; its first id token is issued with it."""
    customer = await services.customers.register(
        body.email, password=body.password, name=body.name
    )
    return CustomerOut.from_customer(customer)


@router.post("/auth/token")
async def log_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], services: Services
) -> AccessTokenOut:
    """OAuth 2.0 password grant: ``username`` is the email."""
    token = await services.customers.login(form.username, form.password)
    if token is None:
        services.metrics.count_auth_failure("api", "customer_login_failed")
        # One answer for an unknown email and a wrong password.
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect email or password.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return AccessTokenOut(
        access_token=token.access_token,
        token_type=token.token_type,
        expires_in=token.expires_in,
    )


@router.get("/me")
async def get_me(customer: CustomerDep, services: Services) -> CustomerOut:
    return CustomerOut.from_customer(
        await services.customers.get_customer(customer.customer_id)
    )


# -- id tokens ------------------------------------------------------------------------


@router.get("/id-tokens")
async def list_id_tokens(customer: CustomerDep, services: Services) -> list[IdTokenOut]:
    tokens = await services.customers.list_id_tokens(customer.customer_id)
    return [IdTokenOut.from_id_token(token) for token in tokens]


@router.post("/operator/id-tokens/{value}/block", tags=["operator: id tokens"])
async def block_id_token(
    value: str, services: Services, operator: OperatorDep
) -> OperatorIdTokenOut:
    """Refuse this token at every station from now on."""
    token = await services.customers.set_id_token_blocked(value, blocked=True)
    return OperatorIdTokenOut.from_id_token(token)


@router.post("/operator/id-tokens/{value}/unblock", tags=["operator: id tokens"])
async def unblock_id_token(
    value: str, services: Services, operator: OperatorDep
) -> OperatorIdTokenOut:
    token = await services.customers.set_id_token_blocked(value, blocked=False)
    return OperatorIdTokenOut.from_id_token(token)


# -- cars -----------------------------------------------------------------------------


@router.get("/cars")
async def list_cars(customer: CustomerDep, services: Services) -> list[CarOut]:
    cars = await services.customers.list_cars(customer.customer_id)
    return [CarOut.from_car(car) for car in cars]


@router.post("/cars", status_code=status.HTTP_201_CREATED)
async def add_car(body: CarCreate, customer: CustomerDep, services: Services) -> CarOut:
    car = await services.customers.add_car(
        customer.customer_id,
        make=body.make,
        model=body.model,
        plate=body.plate,
        battery_capacity_kwh=body.battery_capacity_kwh,
        connector_type=body.connector_type,
    )
    return CarOut.from_car(car)


@router.get("/cars/{car_id}")
async def get_car(car_id: RowId, customer: CustomerDep, services: Services) -> CarOut:
    return CarOut.from_car(
        await services.customers.get_car(customer.customer_id, car_id)
    )


@router.patch("/cars/{car_id}")
async def update_car(
    car_id: RowId, body: CarUpdate, customer: CustomerDep, services: Services
) -> CarOut:
    """Change the fields given; leave a field out to keep it."""
    car = await services.customers.update_car(
        customer.customer_id, car_id, **body.model_dump(exclude_unset=True)
    )
    return CarOut.from_car(car)


@router.delete("/cars/{car_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_car(
    car_id: RowId, customer: CustomerDep, services: Services
) -> Response:
    await services.customers.delete_car(customer.customer_id, car_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
