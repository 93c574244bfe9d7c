"""Customer accounts over HTTP: registration, login, the bearer token, /me.

Every test runs on SQLite and on PostgreSQL, through the real HTTP server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select, update

from csms.app import Csms
from csms.customers.models import Customer
from csms.db.engine import create_sessionmaker

from support.clock import ManualClock
from support.polling import eventually

PROBLEM = "application/problem+json"
PASSWORD = "correct horse battery"
REGISTER = "/api/v1/customers"
LOGIN = "/api/v1/auth/token"
ME = "/api/v1/me"

T = TypeVar("T")


async def register(
    http: httpx.AsyncClient,
    email: str = "ada@example.com",
    *,
    password: str = PASSWORD,
    name: str = "Ada Lovelace",
) -> httpx.Response:
    return await http.post(
        REGISTER, json={"email": email, "password": password, "name": name}
    )


async def log_in(
    http: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> httpx.Response:
    return await http.post(LOGIN, data={"username": email, "password": password})


def bearer(login: httpx.Response) -> dict[str, str]:
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def deactivate(csms: Csms, customer_id: int) -> None:
    async with create_sessionmaker(csms.engine)() as session:
        await session.execute(
            update(Customer).where(Customer.id == customer_id).values(active=False)
        )
        await session.commit()


class HeldExecutor(ThreadPoolExecutor):
    """A default executor that holds every job until released, and counts them."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="held")
        self.received = 0
        self._gate = threading.Event()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.received += 1

        def held() -> T:
            self._gate.wait(timeout=30)
            return fn(*args, **kwargs)

        return super().submit(held)

    def release(self) -> None:
        self._gate.set()


@contextlib.contextmanager
def held_default_executor() -> Iterator[HeldExecutor]:
    # asyncio.to_thread runs its function in the loop's default executor.
    executor = HeldExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    try:
        yield executor
    finally:
        executor.release()


# -- registration -----------------------------------------------------------------


async def test_registration_answers_201_with_the_customer(
    anonymous_http: httpx.AsyncClient, clock: ManualClock
) -> None:
    answer = await register(anonymous_http)

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"id", "email", "name", "created_at"}
    assert body["email"] == "ada@example.com"
    assert body["name"] == "Ada Lovelace"
    assert body["created_at"] == clock.now().isoformat().replace("+00:00", "Z")


async def test_registration_stores_an_argon2id_hash_not_the_password(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    customer_id = (await register(anonymous_http)).json()["id"]

    async with create_sessionmaker(csms.engine)() as session:
        stored = await session.scalar(
            select(Customer.password_hash).where(Customer.id == customer_id)
        )
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_email_is_stored_in_lower_case(
    anonymous_http: httpx.AsyncClient,
) -> None:
    answer = await register(anonymous_http, "Ada.Lovelace@Example.COM")

    assert answer.status_code == 201, answer.text
    assert answer.json()["email"] == "ada.lovelace@example.com"


async def test_duplicate_email_is_a_409_problem_whatever_its_case(
    anonymous_http: httpx.AsyncClient,
) -> None:
    await register(anonymous_http, "ada@example.com")

    answer = await register(anonymous_http, "ADA@example.com", name="Someone Else")

    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Email already registered"


@pytest.mark.parametrize("password", ["", "seven77", "x" * 129])
async def test_password_outside_8_to_128_characters_is_refused_with_422(
    anonymous_http: httpx.AsyncClient, password: str
) -> None:
    answer = await register(anonymous_http, password=password)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["errors"][0]["location"] == ["body", "password"]


@pytest.mark.parametrize("password", ["eight888", "x" * 128])
async def test_password_of_8_or_128_characters_is_accepted(
    anonymous_http: httpx.AsyncClient, password: str
) -> None:
    answer = await register(anonymous_http, password=password)

    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize(
    "email", ["not-an-email", "ada@", "@example.com", "ada@example..com", ""]
)
async def test_malformed_email_is_refused_with_422(
    anonymous_http: httpx.AsyncClient, email: str
) -> None:
    answer = await register(anonymous_http, email)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["errors"][0]["location"] == ["body", "email"]


# -- login ----------------------------------------------------------------------------


async def test_login_answers_a_bearer_token_with_its_lifetime(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register(anonymous_http)

    answer = await log_in(anonymous_http)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    lifetime = csms.settings.access_token_lifetime.total_seconds()
    assert body["expires_in"] == lifetime


async def test_login_ignores_the_case_of_the_email(
    anonymous_http: httpx.AsyncClient,
) -> None:
    await register(anonymous_http, "ada@example.com")

    answer = await log_in(anonymous_http, " ADA@Example.com ")

    assert answer.status_code == 200, answer.text


async def test_unknown_email_and_wrong_password_get_the_same_401(
    anonymous_http: httpx.AsyncClient,
) -> None:
    await register(anonymous_http, "ada@example.com")

    unknown = await log_in(anonymous_http, "nobody@example.com")
    wrong = await log_in(anonymous_http, "ada@example.com", "not the password")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.headers["content-type"] == wrong.headers["content-type"] == PROBLEM
    assert unknown.headers["www-authenticate"] == wrong.headers["www-authenticate"]
    assert unknown.headers["www-authenticate"] == "Bearer"


async def test_unknown_email_still_costs_a_password_verification(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    # Answering an unknown email at once would tell which emails have accounts:
    # the login must wait on a verification in a worker thread like any other.
    with held_default_executor() as executor:
        login = asyncio.create_task(csms.customers.login("nobody@example.com", "pw"))
        await eventually(_true_when(lambda: executor.received >= 1))
        assert not login.done()

    assert await login is None


async def test_inactive_customer_cannot_log_in(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    customer_id = (await register(anonymous_http)).json()["id"]
    await deactivate(csms, customer_id)

    answer = await log_in(anonymous_http)

    assert answer.status_code == 401
    assert answer.json()["detail"] == "Incorrect email or password."


async def test_logins_verify_passwords_off_the_event_loop(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    await register(anonymous_http)
    # Open the database connections now, so that only password work can be
    # waiting in the held executor below.
    await asyncio.gather(
        *(csms.customers.login("ada@example.com", PASSWORD) for _ in range(5))
    )

    with held_default_executor() as executor:
        logins = [
            asyncio.create_task(csms.customers.login("ada@example.com", PASSWORD))
            for _ in range(5)
        ]
        await eventually(_true_when(lambda: executor.received >= 1))

        # A password is being verified in the executor, and the loop still runs.
        pong = await asyncio.wait_for(asyncio.sleep(0, result="pong"), timeout=1)
        assert pong == "pong"
        assert not any(login.done() for login in logins)

    tokens = await asyncio.gather(*logins)
    assert all(token is not None for token in tokens)
    assert executor.received >= 5


# -- the bearer token -------------------------------------------------------------


async def test_me_answers_the_logged_in_customer(
    anonymous_http: httpx.AsyncClient,
) -> None:
    registered = (await register(anonymous_http)).json()
    headers = bearer(await log_in(anonymous_http))

    answer = await anonymous_http.get(ME, headers=headers)

    assert answer.status_code == 200, answer.text
    assert answer.json() == registered


async def test_me_without_a_token_is_a_401_problem_asking_for_bearer(
    anonymous_http: httpx.AsyncClient,
) -> None:
    answer = await anonymous_http.get(ME)

    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_token_is_accepted_until_its_lifetime_ends(
    csms: Csms, anonymous_http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(anonymous_http)
    headers = bearer(await log_in(anonymous_http))

    # The token's times are whole seconds: two short of the lifetime is safe.
    clock.advance(csms.settings.access_token_lifetime.total_seconds() - 2)
    answer = await anonymous_http.get(ME, headers=headers)

    assert answer.status_code == 200, answer.text


async def test_expired_token_is_a_401_problem(
    csms: Csms, anonymous_http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(anonymous_http)
    headers = bearer(await log_in(anonymous_http))

    clock.advance(csms.settings.access_token_lifetime.total_seconds() + 1)
    answer = await anonymous_http.get(ME, headers=headers)

    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_tampered_token_is_a_401_problem(
    anonymous_http: httpx.AsyncClient,
) -> None:
    await register(anonymous_http, "ada@example.com")
    bob = (await register(anonymous_http, "bob@example.com")).json()
    token = (await log_in(anonymous_http)).json()["access_token"]

    # Ada's token, its subject changed to Bob's, with Ada's signature kept.
    header, claims, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    payload["sub"] = str(bob["id"])
    forged_claims = base64.urlsafe_b64encode(json.dumps(payload).encode())
    forged = ".".join((header, forged_claims.rstrip(b"=").decode(), signature))
    answer = await anonymous_http.get(ME, headers={"Authorization": f"Bearer {forged}"})

    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM


async def test_operator_token_is_not_a_customer_token(
    operator_http: httpx.AsyncClient,
) -> None:
    answer = await operator_http.get(ME)

    assert answer.status_code == 401


async def test_token_of_a_deactivated_customer_is_refused(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    customer_id = (await register(anonymous_http)).json()["id"]
    headers = bearer(await log_in(anonymous_http))

    await deactivate(csms, customer_id)
    answer = await anonymous_http.get(ME, headers=headers)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


def _true_when(condition: Callable[[], bool]) -> Callable[[], Any]:
    async def check() -> bool:
        return condition()

    return check
