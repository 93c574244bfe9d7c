"""Customers' bearer tokens: short-lived JWTs, HS256, checked without the database.

Not to be confused with id tokens (``IdToken``), the values stations send.

A token carries ``sub`` (the customer id, a string as RFC 7519 wants), ``iat``,
``exp`` and ``typ: "customer"``, so that a JWT we may sign later for another
purpose can never pass for a customer's. Times come from the injected clock,
never from the system one, so tests can expire a token by moving the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

ALGORITHM = "HS256"
CUSTOMER_TOKEN_TYPE = "customer"  # noqa: S105 - a claim value, not a secret

_REQUIRED_CLAIMS = ["sub", "iat", "exp", "typ"]


@dataclass(frozen=True, slots=True)
class AccessToken:
    """What the login endpoint answers (OAuth 2.0, RFC 6749 section 5.1)."""

    access_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


def build_access_token(
    customer_id: int, *, secret: str, now: datetime, lifetime: timedelta
) -> AccessToken:
    issued_at = int(now.timestamp())
    lifetime_seconds = int(lifetime.total_seconds())
    claims = {
        "sub": str(customer_id),
        "iat": issued_at,
        "exp": issued_at + lifetime_seconds,
        "typ": CUSTOMER_TOKEN_TYPE,
    }
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    return AccessToken(access_token=token, expires_in=lifetime_seconds)


def parse_access_token(token: str, *, secret: str, now: datetime) -> int | None:
    """Return the customer id of a valid, unexpired customer token, else None.

    PyJWT checks the signature, the algorithm and that every claim is present.
    It would check ``exp`` and ``iat`` against the system clock, so those two
    checks are switched off and done here against ``now`` (the injected clock),
    with no leeway: expired means expired.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "require": _REQUIRED_CLAIMS,
            },
        )
    except jwt.InvalidTokenError:
        return None

    expires_at, issued_at = claims["exp"], claims["iat"]
    if not (isinstance(expires_at, int) and isinstance(issued_at, int)):
        return None
    # RFC 7519, section 4.1.4: valid only while now is *before* the expiry.
    timestamp = now.timestamp()
    if timestamp >= expires_at or issued_at > timestamp:
        return None
    if claims["typ"] != CUSTOMER_TOKEN_TYPE:
        return None

    subject = claims["sub"]
    if not (isinstance(subject, str) and subject.isascii() and subject.isdigit()):
        return None
    return int(subject)
