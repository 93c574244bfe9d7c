import base64
import hashlib

import pytest

from csms.stations.credentials import (
    DEFAULT_ITERATIONS,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    PASSWORD_ALPHABET,
    BasicCredentials,
    InvalidPassword,
    generate_password,
    hash_password,
    needs_rehash,
    parse_basic_auth,
    validate_password,
    verify_password,
)

# Cheap to hash in tests while still a real, well-formed encoded string.
_LOW_ITERATION_HASH_PREFIX = "pbkdf2_sha256$2$"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _basic(text: bytes) -> str:
    return "Basic " + _b64(text)


def test_generated_password_has_default_length_of_24() -> None:
    assert len(generate_password()) == 24


@pytest.mark.parametrize("length", [MIN_PASSWORD_LENGTH, 31, MAX_PASSWORD_LENGTH])
def test_generated_password_has_requested_length(length: int) -> None:
    assert len(generate_password(length)) == length


def test_generated_password_uses_only_the_alphabet() -> None:
    password = generate_password(MAX_PASSWORD_LENGTH)
    assert set(password) <= set(PASSWORD_ALPHABET)


def test_alphabet_needs_no_quoting_in_url_or_shell() -> None:
    assert set(PASSWORD_ALPHABET).isdisjoint(set(" :@|*$&;'\"\\`!#?~%/"))


def test_generated_passwords_are_unique() -> None:
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200


def test_generated_password_passes_validation() -> None:
    assert validate_password(generate_password()) is None


@pytest.mark.parametrize("length", [MIN_PASSWORD_LENGTH - 1, MAX_PASSWORD_LENGTH + 1])
def test_generate_password_refuses_length_outside_spec(length: int) -> None:
    with pytest.raises(ValueError, match="16 to 40"):
        generate_password(length)


@pytest.mark.parametrize("length", [MIN_PASSWORD_LENGTH - 1, MAX_PASSWORD_LENGTH + 1])
def test_validate_password_refuses_length_outside_spec(length: int) -> None:
    with pytest.raises(InvalidPassword, match=f"got {length}"):
        validate_password("a" * length)


@pytest.mark.parametrize("bad", [" ", "\t", "é", "\x7f"])
def test_validate_password_refuses_character_outside_printable_ascii(bad: str) -> None:
    with pytest.raises(InvalidPassword, match="position\\(s\\) 17"):
        validate_password("a" * 16 + bad)


def test_validate_password_accepts_colon() -> None:
    assert validate_password("abcd:efgh:ijkl:mnop") is None


def test_invalid_password_error_does_not_repeat_the_password() -> None:
    with pytest.raises(InvalidPassword) as caught:
        validate_password("secret-secret-s ")
    assert "secret" not in str(caught.value)


def test_invalid_password_is_a_value_error() -> None:
    assert issubclass(InvalidPassword, ValueError)


def test_hash_has_documented_format() -> None:
    algorithm, iterations, salt, digest = hash_password("a" * 16).split("$")
    assert algorithm == "pbkdf2_sha256"
    assert int(iterations) == DEFAULT_ITERATIONS
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32


def test_verify_accepts_the_right_password() -> None:
    password = generate_password()
    assert verify_password(password, hash_password(password)) is True


def test_verify_refuses_a_wrong_password() -> None:
    encoded = hash_password(generate_password())
    assert verify_password(generate_password(), encoded) is False


def test_salt_differs_per_hash() -> None:
    first = hash_password("same-password-16")
    second = hash_password("same-password-16")
    assert first.split("$")[2] != second.split("$")[2]
    assert first != second


def test_verify_reads_iterations_from_the_encoded_string() -> None:
    password = "rotated-password-1"
    salt = b"0123456789abcdef"
    # Built independently with hashlib, at an iteration count that is not the default.
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, 1_000)
    encoded = "$".join(
        ["pbkdf2_sha256", "1000", _b64(salt), _b64(digest)],
    )
    assert verify_password(password, encoded) is True
    assert verify_password("other-password-12", encoded) is False


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "not a hash",
        "pbkdf2_sha256$2000$c2FsdA==",
        "md5$2000$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$many$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$0$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$-5$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$\u00b2$c2FsdA==$aGFzaA==",
        "pbkdf2_sha256$2000$not*base64$aGFzaA==",
        "pbkdf2_sha256$2000$c2FsdA==$h\u00e9",
        "pbkdf2_sha256$2000$$aGFzaA==",
        "pbkdf2_sha256$2000$c2FsdA==$aGFzaA==$extra",
    ],
)
def test_verify_of_malformed_hash_is_false(encoded: str) -> None:
    assert verify_password("a" * 16, encoded) is False


def test_fresh_hash_needs_no_rehash() -> None:
    assert needs_rehash(hash_password("a" * 16)) is False


def test_hash_with_fewer_iterations_needs_rehash() -> None:
    assert needs_rehash(_LOW_ITERATION_HASH_PREFIX + "c2FsdA==$aGFzaA==") is True


def test_hash_with_more_iterations_needs_no_rehash() -> None:
    encoded = f"pbkdf2_sha256${DEFAULT_ITERATIONS * 2}$c2FsdA==$aGFzaA=="
    assert needs_rehash(encoded) is False


def test_malformed_hash_needs_rehash() -> None:
    assert needs_rehash("garbage") is True


def test_parse_basic_auth_returns_username_and_password() -> None:
    header = _basic(b"CS-0001:s3cret-password-1234")
    assert parse_basic_auth(header) == BasicCredentials(
        username="CS-0001", password="s3cret-password-1234"
    )


def test_parse_basic_auth_scheme_is_case_insensitive() -> None:
    header = "bASIC " + base64.b64encode(b"CS-0001:pw").decode()
    assert parse_basic_auth(header) == BasicCredentials("CS-0001", "pw")


def test_parse_basic_auth_of_missing_header_is_none() -> None:
    assert parse_basic_auth(None) is None


def test_parse_basic_auth_of_empty_header_is_none() -> None:
    assert parse_basic_auth("") is None


def test_parse_basic_auth_of_other_scheme_is_none() -> None:
    token = base64.b64encode(b"CS-0001:pw").decode()
    assert parse_basic_auth(f"Bearer {token}") is None


def test_parse_basic_auth_of_bad_base64_is_none() -> None:
    assert parse_basic_auth("Basic not*base64!") is None


def test_parse_basic_auth_of_non_utf8_is_none() -> None:
    assert parse_basic_auth(_basic(b"CS-0001:\xff\xfe")) is None


def test_parse_basic_auth_without_colon_is_none() -> None:
    assert parse_basic_auth(_basic(b"CS-0001-password")) is None


def test_parse_basic_auth_splits_on_first_colon() -> None:
    credentials = parse_basic_auth(_basic(b"CS-0001:pass:word:with:colons"))
    assert credentials == BasicCredentials("CS-0001", "pass:word:with:colons")


def test_credentials_repr_hides_the_password() -> None:
    credentials = BasicCredentials(username="CS-0001", password="s3cret-password")
    assert "s3cret-password" not in repr(credentials)
    assert "CS-0001" in repr(credentials)


def test_a_generated_password_is_hashed_with_one_iteration_and_verifies() -> None:
    password = generate_password()

    encoded = hash_password(password, generated=True)

    assert encoded.split("$")[1] == "1"
    assert verify_password(password, encoded)
    assert not needs_rehash(encoded)


def test_a_chosen_password_keeps_the_full_iteration_count() -> None:
    encoded = hash_password("chosen-password-0001")

    assert encoded.split("$")[1] == str(DEFAULT_ITERATIONS)
