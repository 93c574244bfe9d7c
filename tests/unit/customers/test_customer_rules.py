"""The pure rules of the customer domain: emails, plates, id token values."""

from __future__ import annotations

import re

import pytest

from csms.customers.service import (
    canonical_id_token,
    generate_id_token_value,
    normalize_email,
    normalize_plate,
)
from csms.errors import InvalidInput


def test_email_is_lower_cased_and_stripped() -> None:
    assert normalize_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"


@pytest.mark.parametrize(
    "email", ["", "ada", "ada@", "@example.com", "a b@example.com"]
)
def test_malformed_email_is_invalid_input(email: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_email(email)


def test_email_with_an_undeliverable_domain_is_accepted() -> None:
    # Syntax only: no DNS look-up at registration.
    assert normalize_email("ada@no-such-domain.invalid.example") == (
        "ada@no-such-domain.invalid.example"
    )


@pytest.mark.parametrize(
    ("plate", "normalized"),
    [
        ("b-ev 1", "B-EV 1"),
        ("  B-EV 1  ", "B-EV 1"),
        ("B  -  EV\t1", "B - EV 1"),
        ("AB123", "AB123"),
    ],
)
def test_plate_is_stripped_upper_cased_and_spaces_collapsed(
    plate: str, normalized: str
) -> None:
    assert normalize_plate(plate) == normalized


def test_generated_id_token_fits_an_ocpp_16_id_tag() -> None:
    value = generate_id_token_value()

    assert re.fullmatch(r"[0-9A-F]{20}", value)


def test_generated_id_tokens_differ() -> None:
    assert len({generate_id_token_value() for _ in range(1000)}) == 1000


def test_generated_id_token_is_already_canonical() -> None:
    value = generate_id_token_value()

    assert canonical_id_token(value) == value
