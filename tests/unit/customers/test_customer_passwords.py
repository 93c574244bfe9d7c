"""Customer password policy and argon2id hashing."""

from __future__ import annotations

import argon2
import pytest

from csms.customers.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    InvalidPassword,
    hash_password,
    needs_rehash,
    validate_password,
    verify_against_dummy,
    verify_password,
)

# OWASP Password Storage Cheat Sheet, argon2id minimum configuration.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_ITERATIONS = 2
OWASP_MIN_PARALLELISM = 1


async def test_hash_is_argon2id_at_least_at_the_owasp_minimum() -> None:
    parameters = argon2.extract_parameters(await hash_password("a good password"))

    assert parameters.type is argon2.Type.ID
    assert parameters.memory_cost >= OWASP_MIN_MEMORY_KIB
    assert parameters.time_cost >= OWASP_MIN_ITERATIONS
    assert parameters.parallelism >= OWASP_MIN_PARALLELISM
    assert parameters.salt_len >= 16


async def test_verify_accepts_the_right_password() -> None:
    encoded = await hash_password("a good password")

    assert await verify_password("a good password", encoded) is True


async def test_verify_refuses_a_wrong_password() -> None:
    encoded = await hash_password("a good password")

    assert await verify_password("a good passw0rd", encoded) is False


@pytest.mark.parametrize("encoded", ["", "not a hash", "$argon2id$v=19$m=1"])
async def test_verify_of_a_malformed_hash_is_false(encoded: str) -> None:
    assert await verify_password("a good password", encoded) is False


async def test_salt_differs_per_hash() -> None:
    assert await hash_password("same password") != await hash_password("same password")


async def test_dummy_verification_is_always_false() -> None:
    assert await verify_against_dummy("any password at all") is False


async def test_fresh_hash_needs_no_rehash() -> None:
    assert needs_rehash(await hash_password("a good password")) is False


def test_hash_made_with_weaker_parameters_needs_rehash() -> None:
    weaker = argon2.PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)

    assert needs_rehash(weaker.hash("a good password")) is True


def test_malformed_hash_needs_rehash() -> None:
    assert needs_rehash("garbage") is True


@pytest.mark.parametrize("length", [MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH])
def test_password_of_8_to_128_characters_is_valid(length: int) -> None:
    assert validate_password("p" * length) is None


@pytest.mark.parametrize(
    "length", [0, MIN_PASSWORD_LENGTH - 1, MAX_PASSWORD_LENGTH + 1]
)
def test_password_outside_8_to_128_characters_is_invalid(length: int) -> None:
    with pytest.raises(InvalidPassword, match=f"this one has {length}"):
        validate_password("p" * length)


def test_invalid_password_message_does_not_repeat_the_password() -> None:
    with pytest.raises(InvalidPassword) as caught:
        validate_password("secret")

    assert "secret" not in str(caught.value)


def test_password_policy_has_no_composition_rules() -> None:
    # NIST SP 800-63B: length, not character classes.
    assert validate_password("all lower case words") is None
