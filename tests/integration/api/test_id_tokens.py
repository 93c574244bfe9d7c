"""Id tokens: issued at registration, listed to their owner, blocked by operators,
and authorised for stations through ``CustomerService.authorize_token``.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from csms.app import Csms
from csms.customers.models import Customer, IdToken
from csms.customers.service import AuthorizationStatus, TokenAuthorization
from csms.db.engine import create_sessionmaker
from csms.errors import NoUsableIdToken

from support.clock import ManualClock
from support.customers import Customer as CustomerClient
from support.customers import register_customer

PROBLEM = "application/problem+json"
ID_TOKENS = "/api/v1/id-tokens"


def block_path(value: str) -> str:
    return f"/api/v1/operator/id-tokens/{value}/block"


def unblock_path(value: str) -> str:
    return f"/api/v1/operator/id-tokens/{value}/unblock"


async def add_token(
    csms: Csms,
    customer_id: int,
    value: str,
    *,
    clock: ManualClock,
    blocked: bool = False,
    expires_in: timedelta | None = None,
) -> None:
    """A second token for a customer, straight into the database."""
    async with create_sessionmaker(csms.engine)() as session:
        session.add(
            IdToken(
                customer_id=customer_id,
                value=value,
                blocked=blocked,
                expires_at=clock.now() + expires_in if expires_in else None,
                created_at=clock.now(),
            )
        )
        await session.commit()


@pytest.fixture
async def ada(anonymous_http: httpx.AsyncClient) -> CustomerClient:
    return await register_customer(anonymous_http, "ada@example.com")


# -- issued and listed ------------------------------------------------------------


async def test_registration_issues_one_unblocked_token_that_is_listed(
    ada: CustomerClient, clock: ManualClock
) -> None:
    answer = await ada.get(ID_TOKENS)

    assert answer.status_code == 200, answer.text
    [token] = answer.json()
    assert token["blocked"] is False
    assert token["created_at"] == clock.now().isoformat().replace("+00:00", "Z")


async def test_issued_token_is_20_upper_case_hex_characters(
    ada: CustomerClient,
) -> None:
    # OCPP 1.6 idTag is a CiString20.
    assert re.fullmatch(r"[0-9A-F]{20}", ada.id_token)


async def test_each_customer_gets_a_different_token(
    ada: CustomerClient, anonymous_http: httpx.AsyncClient
) -> None:
    bob = await register_customer(anonymous_http, "bob@example.com")

    assert bob.id_token != ada.id_token


async def test_only_my_own_tokens_are_listed(
    ada: CustomerClient, anonymous_http: httpx.AsyncClient
) -> None:
    bob = await register_customer(anonymous_http, "bob@example.com")

    values = [token["value"] for token in (await bob.get(ID_TOKENS)).json()]

    assert values == [bob.id_token]


async def test_listing_tokens_needs_a_customer_token(
    anonymous_http: httpx.AsyncClient,
) -> None:
    answer = await anonymous_http.get(ID_TOKENS)

    assert answer.status_code == 401


# -- blocking -----------------------------------------------------------------------


async def test_operator_blocks_a_token_and_its_owner_sees_it_blocked(
    ada: CustomerClient, operator_http: httpx.AsyncClient
) -> None:
    answer = await operator_http.post(block_path(ada.id_token))

    assert answer.status_code == 200, answer.text
    assert answer.json()["value"] == ada.id_token
    assert answer.json()["blocked"] is True
    assert answer.json()["customer_id"] == ada.customer_id
    assert (await ada.get(ID_TOKENS)).json()[0]["blocked"] is True


async def test_blocked_token_is_authorized_as_blocked(
    csms: Csms, ada: CustomerClient, operator_http: httpx.AsyncClient
) -> None:
    await operator_http.post(block_path(ada.id_token))

    authorization = await csms.customers.authorize_token(ada.id_token)

    assert authorization == TokenAuthorization(
        AuthorizationStatus.BLOCKED, ada.customer_id, ada.id_token
    )


async def test_unblocked_token_is_accepted_again(
    csms: Csms, ada: CustomerClient, operator_http: httpx.AsyncClient
) -> None:
    await operator_http.post(block_path(ada.id_token))

    answer = await operator_http.post(unblock_path(ada.id_token))

    assert answer.status_code == 200, answer.text
    assert answer.json()["blocked"] is False
    authorization = await csms.customers.authorize_token(ada.id_token)
    assert authorization.status is AuthorizationStatus.ACCEPTED


async def test_blocking_an_unknown_token_is_a_404_problem(
    operator_http: httpx.AsyncClient,
) -> None:
    answer = await operator_http.post(block_path("0000DEADBEEF0000CAFE"))

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Id token not found"


async def test_unblocking_an_unknown_token_is_a_404_problem(
    operator_http: httpx.AsyncClient,
) -> None:
    answer = await operator_http.post(unblock_path("0000DEADBEEF0000CAFE"))

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM


async def test_a_customer_cannot_block_tokens(ada: CustomerClient) -> None:
    answer = await ada.post(block_path(ada.id_token))

    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM


# -- authorize_token ----------------------------------------------------------------


async def test_valid_token_is_accepted_for_its_owner(
    csms: Csms, ada: CustomerClient
) -> None:
    authorization = await csms.customers.authorize_token(ada.id_token)

    assert authorization == TokenAuthorization(
        AuthorizationStatus.ACCEPTED, ada.customer_id, ada.id_token
    )


async def test_token_is_compared_without_regard_to_case(
    csms: Csms, ada: CustomerClient
) -> None:
    # OCPP's idTag / idToken are CiStrings.
    authorization = await csms.customers.authorize_token(ada.id_token.lower())

    assert authorization.status is AuthorizationStatus.ACCEPTED
    assert authorization.token_value == ada.id_token


async def test_unknown_token_is_unknown(csms: Csms, ada: CustomerClient) -> None:
    authorization = await csms.customers.authorize_token("NOSUCHTOKEN")

    assert authorization == TokenAuthorization(
        AuthorizationStatus.UNKNOWN, None, "NOSUCHTOKEN"
    )


async def test_token_of_an_inactive_customer_is_invalid(
    csms: Csms, ada: CustomerClient
) -> None:
    async with create_sessionmaker(csms.engine)() as session:
        await session.execute(
            update(Customer).where(Customer.id == ada.customer_id).values(active=False)
        )
        await session.commit()

    authorization = await csms.customers.authorize_token(ada.id_token)

    assert authorization == TokenAuthorization(
        AuthorizationStatus.INVALID, ada.customer_id, ada.id_token
    )


async def test_token_past_its_expiry_is_expired(
    csms: Csms, ada: CustomerClient, clock: ManualClock
) -> None:
    await add_token(
        csms, ada.customer_id, "EXPIRING01", clock=clock, expires_in=timedelta(hours=1)
    )
    assert (
        await csms.customers.authorize_token("EXPIRING01")
    ).status is AuthorizationStatus.ACCEPTED

    clock.advance(3600)
    authorization = await csms.customers.authorize_token("EXPIRING01")

    assert authorization.status is AuthorizationStatus.EXPIRED


# -- get_primary_token --------------------------------------------------------------


async def test_primary_token_is_the_one_issued_at_registration(
    csms: Csms, ada: CustomerClient, clock: ManualClock
) -> None:
    clock.advance(60)
    await add_token(csms, ada.customer_id, "LATERTOKEN01", clock=clock)

    token = await csms.customers.get_primary_token(ada.customer_id)

    assert token.value == ada.id_token


async def test_primary_token_skips_blocked_and_expired_tokens(
    csms: Csms,
    ada: CustomerClient,
    clock: ManualClock,
    operator_http: httpx.AsyncClient,
) -> None:
    await operator_http.post(block_path(ada.id_token))
    await add_token(
        csms, ada.customer_id, "EXPIRING01", clock=clock, expires_in=timedelta(hours=1)
    )
    clock.advance(60)
    await add_token(csms, ada.customer_id, "USABLE01", clock=clock)
    clock.advance(3600)

    token = await csms.customers.get_primary_token(ada.customer_id)

    assert token.value == "USABLE01"


async def test_primary_token_of_a_customer_with_only_blocked_tokens_is_refused(
    csms: Csms, ada: CustomerClient, operator_http: httpx.AsyncClient
) -> None:
    await operator_http.post(block_path(ada.id_token))

    with pytest.raises(NoUsableIdToken):
        await csms.customers.get_primary_token(ada.customer_id)
