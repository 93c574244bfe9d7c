"""Customer passwords: the policy, and argon2id hashes computed off the event loop.

Unlike station passwords (``csms.stations.credentials``), customers choose their
own, and people choose guessable ones: a slow, memory-hard hash is what protects
them if the table leaks. We use argon2id at the OWASP Password Storage Cheat
Sheet minimum (m = 19 MiB, t = 2, p = 1): about 45 ms of one core per hash on
our 2-core machine. Both hashing and verifying run in a worker thread through
``asyncio.to_thread`` (argon2-cffi releases the GIL), so a burst of logins never
holds up the event loop that also serves the stations.

The parameters are stored in every hash; ``needs_rehash`` tells the caller when
a hash was made with weaker ones, to replace it at the next good login.
"""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# NIST SP 800-63B, section 5.1.1.2: at least 8 characters chosen by the user,
# and an upper bound of at least 64; 128 leaves room for passphrases.
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128

# OWASP Password Storage Cheat Sheet, argon2id minimum configuration.
ARGON2_MEMORY_COST_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

_HASHER = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_COST_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)


class InvalidPassword(ValueError):
    """A password outside the policy; the message never repeats the password."""


def validate_password(password: str) -> None:
    """Raise ``InvalidPassword`` unless ``password`` has 8 to 128 characters.

    NIST asks for no composition rules (digits, symbols), so there are none.
    """
    # TODO: NIST also asks to refuse passwords known from breaches; without a
    # breached-password list, "password1" is accepted.
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidPassword(
            f"A password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
            f"characters; this one has {len(password)}."
        )


async def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password`` (PHC string format)."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password: str, encoded: str) -> bool:
    """Return whether ``password`` matches ``encoded``; False for a malformed hash."""
    return await asyncio.to_thread(_verify, password, encoded)


async def verify_against_dummy(password: str) -> bool:
    """Spend the time of one verification, and return False.

    For a login with an unknown email: answering at once would tell an attacker
    which emails have accounts.
    """
    await asyncio.to_thread(_verify_dummy, password)
    return False


def needs_rehash(encoded: str) -> bool:
    """Return whether ``encoded`` was made with other parameters than ours."""
    try:
        return _HASHER.check_needs_rehash(encoded)
    except InvalidHashError:
        return True


def _verify(password: str, encoded: str) -> bool:
    try:
        return _HASHER.verify(encoded, password)
    except (VerificationError, InvalidHashError):
        return False


def _verify_dummy(password: str) -> None:
    _verify(password, _dummy_hash())


@functools.cache
def _dummy_hash() -> str:
    # Made once, on first use and in a worker thread, with the same parameters
    # as real hashes so that verifying against it costs the same.
    return _HASHER.hash(secrets.token_urlsafe(16))
