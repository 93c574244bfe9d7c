"""Operator accounts and the API tokens that authenticate them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.clock import Clock
from csms.errors import Conflict
from csms.operators.models import Operator

TOKEN_PREFIX = "csmsop_"  # noqa: S105 - a prefix, not a secret


class OperatorAlreadyExists(Conflict):
    title = "Operator already exists"

    def __init__(self, email: str) -> None:
        super().__init__(f"An operator with email {email!r} already exists.")


@dataclass(frozen=True, slots=True)
class OperatorIdentity:
    """Who made an operator request: an account, or the bootstrap token."""

    email: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class OperatorService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        bootstrap_token: str | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._bootstrap_token = bootstrap_token

    async def add(self, email: str) -> str:
        """Create an operator; returns its API token, shown only this once."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._sessionmaker() as session:
            session.add(
                Operator(
                    email=email.strip().lower(),
                    token_hash=_digest(token),
                    created_at=self._clock.now(),
                )
            )
            try:
                await session.commit()
            except IntegrityError as exc:
                raise OperatorAlreadyExists(email) from exc
        return token

    async def authenticate(self, token: str) -> OperatorIdentity | None:
        if self._bootstrap_token is not None and hmac.compare_digest(
            token.encode(), self._bootstrap_token.encode()
        ):
            return OperatorIdentity(email="bootstrap")
        if not token.startswith(TOKEN_PREFIX):
            return None
        async with self._sessionmaker() as session:
            email = await session.scalar(
                select(Operator.email).where(Operator.token_hash == _digest(token))
            )
        return None if email is None else OperatorIdentity(email=email)
