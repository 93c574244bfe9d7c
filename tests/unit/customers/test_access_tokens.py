"""Customers' JWT access tokens, checked against an injected time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from csms.customers.access_tokens import build_access_token, parse_access_token

SECRET = "s" * 32
NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
LIFETIME = timedelta(minutes=30)


def _token(customer_id: int = 7) -> str:
    return build_access_token(
        customer_id, secret=SECRET, now=NOW, lifetime=LIFETIME
    ).access_token


def _signed(claims: dict[str, Any], *, secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _valid_claims(**changes: Any) -> dict[str, Any]:
    issued = int(NOW.timestamp())
    claims: dict[str, Any] = {
        "sub": "7",
        "iat": issued,
        "exp": issued + 1800,
        "typ": "customer",
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def test_token_carries_the_documented_claims() -> None:
    claims = jwt.decode(
        _token(), SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )

    assert claims == {
        "sub": "7",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 1800,
        "typ": "customer",
    }


def test_token_states_its_lifetime_in_seconds() -> None:
    token = build_access_token(7, secret=SECRET, now=NOW, lifetime=LIFETIME)

    assert (token.expires_in, token.token_type) == (1800, "bearer")


def test_a_fresh_token_names_its_customer() -> None:
    assert parse_access_token(_token(7), secret=SECRET, now=NOW) == 7


def test_token_is_valid_one_second_before_it_expires() -> None:
    now = NOW + LIFETIME - timedelta(seconds=1)

    assert parse_access_token(_token(), secret=SECRET, now=now) == 7


def test_token_is_expired_at_its_expiry_time() -> None:
    assert parse_access_token(_token(), secret=SECRET, now=NOW + LIFETIME) is None


def test_token_issued_in_the_future_is_refused() -> None:
    now = NOW - timedelta(seconds=1)

    assert parse_access_token(_token(), secret=SECRET, now=now) is None


def test_token_signed_with_another_secret_is_refused() -> None:
    token = _signed(_valid_claims(), secret="o" * 32)

    assert parse_access_token(token, secret=SECRET, now=NOW) is None


def test_unsigned_token_is_refused() -> None:
    token = jwt.encode(_valid_claims(), None, algorithm="none")

    assert parse_access_token(token, secret=SECRET, now=NOW) is None


def test_token_of_another_type_is_refused() -> None:
    token = _signed(_valid_claims(typ="operator"))

    assert parse_access_token(token, secret=SECRET, now=NOW) is None


@pytest.mark.parametrize("missing", ["sub", "iat", "exp", "typ"])
def test_token_without_a_required_claim_is_refused(missing: str) -> None:
    token = _signed(_valid_claims(**{missing: None}))

    assert parse_access_token(token, secret=SECRET, now=NOW) is None


@pytest.mark.parametrize("subject", ["abc", "-1", "7.0", ""])
def test_token_whose_subject_is_not_a_customer_id_is_refused(subject: str) -> None:
    token = _signed(_valid_claims(sub=subject))

    assert parse_access_token(token, secret=SECRET, now=NOW) is None


@pytest.mark.parametrize("garbage", ["", "not.a.jwt", "a.b", "x" * 40])
def test_garbage_is_refused(garbage: str) -> None:
    assert parse_access_token(garbage, secret=SECRET, now=NOW) is None
