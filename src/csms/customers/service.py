"""The rules for customers: accounts, login, id tokens and cars.

Each public method is one unit of work, committed before it returns. Password
hashing runs in worker threads (see ``csms.customers.passwords``), at most a few
at a time, so that a login burst leaves the event loop and some cores to the
stations.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

import structlog
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.clock import Clock
from csms.customers import passwords
from csms.customers.access_tokens import (
    AccessToken,
    build_access_token,
    parse_access_token,
)
from csms.customers.models import ID_TOKEN_MAX_LENGTH, Car, Customer, IdToken
from csms.db.engine import single_read
from csms.errors import (
    CarNotFound,
    CustomerNotFound,
    EmailAlreadyRegistered,
    IdTokenNotFound,
    InvalidInput,
    NoUsableIdToken,
    PlateAlreadyRegistered,
)
from csms.settings import Settings

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.customers")

# What an Authorize reads: built once (~130 µs of CPU saved each, bench_messages).
_TOKEN_AND_OWNER = (
    select(IdToken, Customer.active)
    .join(Customer, Customer.id == IdToken.customer_id)
    .where(IdToken.value == bindparam("value"))
)

# Whether a customer has exactly one car (a start at the station names none).
_FIRST_TWO_CARS = (
    select(Car.id).where(Car.customer_id == bindparam("customer_id")).limit(2)
)

NAME_MAX_LENGTH = 200
EMAIL_MAX_LENGTH = 320
CAR_TEXT_MAX_LENGTH = 100
PLATE_MAX_LENGTH = 20
BATTERY_CAPACITY_MAX_KWH = 1000.0

# Half the cores at most hash passwords; the rest stay with the event loop.
_HASHING_CONCURRENCY = max(1, (os.cpu_count() or 2) // 2)
# 80 random bits: a collision is not expected in the life of the system, but
# the unique constraint would refuse one, and registration then retries.
_ID_TOKEN_ATTEMPTS = 3


class AuthorizationStatus(StrEnum):
    """What the CSMS decides about an id token a station presents.

    The OCPP edges map it to their versions' values (1.6 has no ``Unknown``).
    """

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    UNKNOWN = "Unknown"


class ConnectorType(StrEnum):
    """The charging inlet of a car."""

    TYPE1 = "Type1"  # SAE J1772, AC
    TYPE2 = "Type2"  # IEC 62196-2 "Mennekes", AC
    CCS1 = "CCS1"
    CCS2 = "CCS2"
    CHADEMO = "CHAdeMO"
    NACS = "NACS"  # SAE J3400, Tesla's connector
    GBT = "GB/T"


class Unset(Enum):
    """Marks a field an update leaves alone, where None would mean "clear it"."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


@dataclass(frozen=True, slots=True)
class CustomerIdentity:
    """Who made a customer request, from a verified access token."""

    customer_id: int
    email: str


@dataclass(frozen=True, slots=True)
class TokenAuthorization:
    """The answer to a station that presents an id token.

    ``customer_id`` is None only when the token is unknown. ``token_value`` is
    the stored value when the token is known, else the value as presented.
    """

    status: AuthorizationStatus
    customer_id: int | None
    token_value: str


def normalize_email(email: str) -> str:
    """Return ``email`` validated (syntax only, no DNS) and in lower case."""
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"Not a valid email address: {exc}") from exc
    normalized = checked.normalized.lower()
    if len(normalized) > EMAIL_MAX_LENGTH:
        raise InvalidInput(
            f"An email address has at most {EMAIL_MAX_LENGTH} characters."
        )
    return normalized


def normalize_plate(plate: str) -> str:
    """Strip, upper-case and collapse inner spaces: ``" ab  123 "`` is ``"AB 123"``."""
    return " ".join(plate.split()).upper()


def canonical_id_token(value: str) -> str:
    """The stored form of an id token value.

    OCPP's idTag (1.6, CiString20) and idToken (2.0.1, CiString36) compare
    without regard to case; every value we store is upper-case, so lookups
    upper-case what a station or an operator sends.
    """
    return value.upper()


def generate_id_token_value() -> str:
    """20 upper-case hex characters: fits OCPP 1.6's CiString20 idTag."""
    return secrets.token_hex(ID_TOKEN_MAX_LENGTH // 2).upper()


class CustomerService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._settings = settings
        secret = settings.jwt_secret
        # Development without a configured secret: tokens then last only as long
        # as this process (settings refuse this in production).
        self._jwt_secret = (
            secret.get_secret_value() if secret else secrets.token_urlsafe(32)
        )
        self._hashing = asyncio.Semaphore(_HASHING_CONCURRENCY)

    # -- accounts -------------------------------------------------------------------

    async def register(self, email: str, *, password: str, name: str) -> Customer:
        """Create an account and issue its first id token.

        Raises ``InvalidInput`` for a bad email, password or name, and
        ``EmailAlreadyRegistered`` when the (normalised) email has an account.
        """
        email = normalize_email(email)
        _check_password(password)
        name = _check_text("name", name, max_length=NAME_MAX_LENGTH)
        async with self._hashing:
            password_hash = await passwords.hash_password(password)

        for _ in range(_ID_TOKEN_ATTEMPTS):
            now = self._clock.now()
            customer = Customer(
                email=email,
                name=name,
                password_hash=password_hash,
                active=True,
                created_at=now,
            )
            async with self._sessionmaker() as session:
                session.add(customer)
                try:
                    await session.flush()
                except IntegrityError as exc:
                    raise EmailAlreadyRegistered(email) from exc
                session.add(
                    IdToken(
                        customer_id=customer.id,
                        value=generate_id_token_value(),
                        blocked=False,
                        created_at=now,
                    )
                )
                try:
                    await session.commit()
                except IntegrityError:
                    # The token value collided (the email was checked at the
                    # flush above): start again with a new one.
                    await session.rollback()
                    continue
            logger.info("customers.registered", customer_id=customer.id)
            return customer
        raise RuntimeError("could not generate a unique id token value")

    async def get_customer(self, customer_id: int) -> Customer:
        async with self._sessionmaker() as session:
            customer = await session.get(Customer, customer_id)
        if customer is None:
            raise CustomerNotFound(customer_id)
        return customer

    # -- login and access tokens ----------------------------------------------------

    async def login(self, email: str, password: str) -> AccessToken | None:
        """Return an access token, or None for an unknown email or a wrong password.

        Both failures take about the same time, so the answer's timing does not
        tell which emails have accounts. An inactive account cannot log in.
        """
        try:
            email = normalize_email(email)
        except InvalidInput:
            email = email.strip().lower()
        async with self._sessionmaker() as session:
            row = (
                await session.execute(
                    select(Customer.id, Customer.password_hash, Customer.active).where(
                        Customer.email == email
                    )
                )
            ).one_or_none()

        async with self._hashing:
            if row is None:
                await passwords.verify_against_dummy(password)
                return None
            if not await passwords.verify_password(password, row.password_hash):
                return None
            if passwords.needs_rehash(row.password_hash):
                await self._rehash(row.id, password)
        if not row.active:
            return None
        return build_access_token(
            row.id,
            secret=self._jwt_secret,
            now=self._clock.now(),
            lifetime=self._settings.access_token_lifetime,
        )

    async def authenticate(self, access_token: str) -> CustomerIdentity | None:
        """Return who holds ``access_token``, or None if it is invalid or expired.

        The token is checked locally; one primary-key lookup then makes sure the
        account still exists and is active, so deactivation takes effect at once.
        """
        customer_id = parse_access_token(
            access_token, secret=self._jwt_secret, now=self._clock.now()
        )
        if customer_id is None:
            return None
        async with self._sessionmaker() as session:
            row = (
                await session.execute(
                    select(Customer.email, Customer.active).where(
                        Customer.id == customer_id
                    )
                )
            ).one_or_none()
        if row is None or not row.active:
            return None
        return CustomerIdentity(customer_id=customer_id, email=row.email)

    async def _rehash(self, customer_id: int, password: str) -> None:
        # Called with self._hashing held.
        password_hash = await passwords.hash_password(password)
        async with self._sessionmaker() as session:
            customer = await session.get(Customer, customer_id)
            if customer is not None:
                customer.password_hash = password_hash
                await session.commit()

    # -- id tokens ------------------------------------------------------------------

    async def list_id_tokens(self, customer_id: int) -> Sequence[IdToken]:
        async with self._sessionmaker() as session:
            return (
                await session.scalars(
                    select(IdToken)
                    .where(IdToken.customer_id == customer_id)
                    .order_by(IdToken.created_at, IdToken.id)
                )
            ).all()

    async def set_id_token_blocked(self, value: str, *, blocked: bool) -> IdToken:
        """Block or unblock an id token (an operator's decision).

        Raises ``IdTokenNotFound`` for an unknown value.
        """
        value = canonical_id_token(value)
        async with self._sessionmaker() as session:
            token = await session.scalar(select(IdToken).where(IdToken.value == value))
            if token is None:
                raise IdTokenNotFound(value)
            token.blocked = blocked
            await session.commit()
        logger.info(
            "customers.id_token.blocked" if blocked else "customers.id_token.unblocked",
            customer_id=token.customer_id,
            id_token_id=token.id,
        )
        return token

    async def authorize_token(self, value: str) -> TokenAuthorization:
        """Decide whether a station may charge for the id token ``value``.

        Unknown when no token has this value; otherwise the token's own state
        decides first (Blocked, then Expired by the injected clock), then its
        owner's account (Invalid when inactive); Accepted when all are fine.
        The value is compared without regard to case, as OCPP's CiString is.
        """
        async with single_read(self._sessionmaker) as session:
            row = (
                await session.execute(
                    _TOKEN_AND_OWNER, {"value": canonical_id_token(value)}
                )
            ).one_or_none()
        if row is None:
            return TokenAuthorization(AuthorizationStatus.UNKNOWN, None, value)

        token, active = row
        if token.blocked:
            status = AuthorizationStatus.BLOCKED
        elif token.expires_at is not None and token.expires_at <= self._clock.now():
            status = AuthorizationStatus.EXPIRED
        elif not active:
            status = AuthorizationStatus.INVALID
        else:
            status = AuthorizationStatus.ACCEPTED
        return TokenAuthorization(status, token.customer_id, token.value)

    async def get_primary_token(self, customer_id: int) -> IdToken:
        """The customer's oldest token that is neither blocked nor expired.

        Raises ``NoUsableIdToken`` when there is none.
        """
        now = self._clock.now()
        async with self._sessionmaker() as session:
            token = await session.scalar(
                select(IdToken)
                .where(
                    IdToken.customer_id == customer_id,
                    IdToken.blocked.is_(False),
                    (IdToken.expires_at.is_(None)) | (IdToken.expires_at > now),
                )
                .order_by(IdToken.created_at, IdToken.id)
                .limit(1)
            )
        if token is None:
            raise NoUsableIdToken(customer_id)
        return token

    # -- cars -------------------------------------------------------------------------

    async def list_cars(self, customer_id: int) -> Sequence[Car]:
        async with self._sessionmaker() as session:
            return (
                await session.scalars(
                    select(Car).where(Car.customer_id == customer_id).order_by(Car.id)
                )
            ).all()

    async def get_car(self, customer_id: int, car_id: int) -> Car:
        """The customer's car ``car_id``.

        Raises ``CarNotFound`` when there is no such car and also when it belongs
        to another customer: the answer never tells whose car an id is.
        """
        async with self._sessionmaker() as session:
            return await _get_own_car(session, customer_id, car_id)

    async def count_cars(self, customer_id: int) -> int:
        async with self._sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Car)
                .where(Car.customer_id == customer_id)
            )
        return count or 0

    async def only_car_id(self, customer_id: int) -> int | None:
        """The id of the customer's car if they have exactly one, else None."""
        async with self._sessionmaker() as session:
            return await only_car_id(session, customer_id)

    async def add_car(
        self,
        customer_id: int,
        *,
        make: str,
        model: str,
        plate: str,
        battery_capacity_kwh: float | None = None,
        connector_type: ConnectorType | None = None,
    ) -> Car:
        """Add a car; ``PlateAlreadyRegistered`` if the customer has its plate."""
        plate = _check_plate(plate)
        car = Car(
            customer_id=customer_id,
            make=_check_text("make", make, max_length=CAR_TEXT_MAX_LENGTH),
            model=_check_text("model", model, max_length=CAR_TEXT_MAX_LENGTH),
            plate=plate,
            battery_capacity_kwh=_check_battery_capacity(battery_capacity_kwh),
            connector_type=connector_type.value if connector_type else None,
            created_at=self._clock.now(),
        )
        async with self._sessionmaker() as session:
            session.add(car)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise PlateAlreadyRegistered(plate) from exc
        return car

    async def update_car(
        self,
        customer_id: int,
        car_id: int,
        *,
        make: str | None = None,
        model: str | None = None,
        plate: str | None = None,
        battery_capacity_kwh: float | Unset | None = UNSET,
        connector_type: ConnectorType | Unset | None = UNSET,
    ) -> Car:
        """Change the given fields of the customer's car.

        ``make``, ``model`` and ``plate`` stay as they are when None; the two
        optional fields stay when ``UNSET`` and are cleared when None. Raises
        ``CarNotFound`` (see ``get_car``) and ``PlateAlreadyRegistered``.
        """
        async with self._sessionmaker() as session:
            car = await _get_own_car(session, customer_id, car_id)
            if make is not None:
                car.make = _check_text("make", make, max_length=CAR_TEXT_MAX_LENGTH)
            if model is not None:
                car.model = _check_text("model", model, max_length=CAR_TEXT_MAX_LENGTH)
            if plate is not None:
                plate = car.plate = _check_plate(plate)
            if battery_capacity_kwh is not UNSET:
                car.battery_capacity_kwh = _check_battery_capacity(battery_capacity_kwh)
            if connector_type is not UNSET:
                car.connector_type = connector_type.value if connector_type else None
            try:
                await session.commit()
            except IntegrityError as exc:
                # Only the plate is unique among these fields; the rollback has
                # expired ``car``, so name the plate from the argument.
                raise PlateAlreadyRegistered(plate or "") from exc
        return car

    async def delete_car(self, customer_id: int, car_id: int) -> None:
        """Remove the customer's car; raises ``CarNotFound`` (see ``get_car``)."""
        async with self._sessionmaker() as session:
            car = await _get_own_car(session, customer_id, car_id)
            await session.delete(car)
            await session.commit()


async def _get_own_car(session: AsyncSession, customer_id: int, car_id: int) -> Car:
    # One query on both ids: someone else's car and no car look the same.
    car = await session.scalar(
        select(Car).where(Car.id == car_id, Car.customer_id == customer_id)
    )
    if car is None:
        raise CarNotFound(car_id)
    return car


def _check_password(password: str) -> None:
    try:
        passwords.validate_password(password)
    except passwords.InvalidPassword as exc:
        raise InvalidInput(str(exc)) from exc


def _check_text(field: str, value: str, *, max_length: int) -> str:
    value = value.strip()
    if not 1 <= len(value) <= max_length:
        raise InvalidInput(f"A {field} has 1 to {max_length} characters.")
    return value


def _check_plate(plate: str) -> str:
    plate = normalize_plate(plate)
    if not 1 <= len(plate) <= PLATE_MAX_LENGTH:
        raise InvalidInput(f"A plate has 1 to {PLATE_MAX_LENGTH} characters.")
    return plate


def _check_battery_capacity(capacity_kwh: float | None) -> float | None:
    if capacity_kwh is not None and not 0 < capacity_kwh <= BATTERY_CAPACITY_MAX_KWH:
        raise InvalidInput(
            f"A battery capacity is more than 0 and at most "
            f"{BATTERY_CAPACITY_MAX_KWH:g} kWh."
        )
    return capacity_kwh


async def only_car_id(session: AsyncSession, customer_id: int) -> int | None:
    """The id of the customer's car if they have exactly one, else None; in the
    caller's transaction (a second connection while it holds one could wait for
    ever on a full pool)."""
    car_ids = (
        await session.scalars(_FIRST_TWO_CARS, {"customer_id": customer_id})
    ).all()
    return car_ids[0] if len(car_ids) == 1 else None
