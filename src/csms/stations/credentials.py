"""Station passwords for OCPP security profile 1 (HTTP Basic auth on the upgrade).

A station sends ``Authorization: Basic base64(<station id>:<password>)`` on the
WebSocket upgrade (OCPP 1.6 security whitepaper, security profile 1; OCPP 2.0.1
part 2, A00.FR.205 for the length). We store only a salted hash of the password.

Why PBKDF2-SHA256 at 2,000 iterations and not argon2 or scrypt: a slow hash only
matters when the secret is guessable. Generated passwords carry about 6 bits per
character, so even the 16-character minimum holds about 96 bits and a full
24-character one about 144 bits; nobody guesses those offline, at any hash cost.
Passwords supplied by hand are held to the same 16-character minimum. What a slow
hash would cost us is real: after an outage ~96,000 stations reconnect at once and
two cores must verify ~1,000 handshakes a second. Measured on our 2-core machine
(Python 3.11.7, hashlib's OpenSSL PBKDF2, 5 runs of 2,000 calls): hash_password
0.66 to 0.70 ms, verify_password 0.73 to 0.84 ms per call, so 1,000 verifications
take ~0.8 s of CPU, about 40 % of the two cores, leaving room for everything else.
The iteration count is stored in every hash, so it can be raised later;
``needs_rehash`` tells the caller when to re-hash at the next good login.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

# Letters, digits and the RFC 3986 "unreserved" marks "-_." : a subset of the
# OCPP 2.0.1 passwordString alphabet (letters, digits, "*-_=:+|@.") chosen so a
# generated password can be pasted into a URL, a shell or a config file without
# quoting — "*" and "|" mean something to a shell, "@" and ":" to a URL's userinfo.
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_."

# OCPP 2.0.1 A00.FR.205 and the 1.6 security whitepaper: 16 to 40 characters.
MIN_PASSWORD_LENGTH = 16
MAX_PASSWORD_LENGTH = 40

DEFAULT_PASSWORD_LENGTH = 24
DEFAULT_ITERATIONS = 2_000
GENERATED_PASSWORD_ITERATIONS = 1

_ALGORITHM = "pbkdf2_sha256"
_SALT_BYTES = 16
# Printable ASCII without the space: what a station's configuration can hold and
# what survives the Basic-auth header unchanged.
_ALLOWED_PASSWORD_CHARACTERS = frozenset(chr(code) for code in range(0x21, 0x7F))


# Named like our other domain errors (StationNotFound), not with an Error suffix.
class InvalidPassword(ValueError):
    """A password that OCPP security profile 1 does not allow."""


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """The station id and password taken from an ``Authorization: Basic`` header."""

    username: str
    password: str

    def __repr__(self) -> str:
        # Keep the password out of logs and tracebacks.
        return f"BasicCredentials(username={self.username!r}, password='***')"


def generate_password(length: int = DEFAULT_PASSWORD_LENGTH) -> str:
    """Return a new random station password drawn from ``PASSWORD_ALPHABET``.

    Raises ``ValueError`` if ``length`` is outside 16..40.
    """
    if not MIN_PASSWORD_LENGTH <= length <= MAX_PASSWORD_LENGTH:
        raise ValueError(
            f"password length must be {MIN_PASSWORD_LENGTH} to "
            f"{MAX_PASSWORD_LENGTH} characters, got {length}"
        )
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def validate_password(password: str) -> None:
    """Raise ``InvalidPassword`` unless ``password`` may be used by a station.

    Allowed: 16 to 40 printable ASCII characters, no spaces. A ``:`` is allowed:
    Basic auth splits ``user:password`` on the first colon (RFC 7617, section 2), and
    a station id cannot contain one, so later colons belong to the password. The
    message never repeats the password, so it is safe to log or return to a client.
    """
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidPassword(
            f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} "
            f"characters long, got {len(password)}"
        )
    bad_positions = [
        index
        for index, character in enumerate(password, start=1)
        if character not in _ALLOWED_PASSWORD_CHARACTERS
    ]
    if bad_positions:
        positions = ", ".join(str(index) for index in bad_positions)
        raise InvalidPassword(
            "password may only contain printable ASCII characters without spaces; "
            f"not allowed at position(s) {positions}"
        )


def hash_password(password: str, *, generated: bool = False) -> str:
    """Return ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` with a fresh random salt.

    Salt and hash are standard base64. The password is not validated here. A
    password this module generated gets a single iteration: with ~144 bits of
    randomness no iteration count changes what an offline guesser can do, while
    the fleet's reconnect storms and imports then verify and hash in microseconds.
    """
    iterations = GENERATED_PASSWORD_ITERATIONS if generated else DEFAULT_ITERATIONS
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _derive(password, salt=salt, iterations=iterations)
    return "$".join(
        (_ALGORITHM, str(iterations), _encode_b64(salt), _encode_b64(digest))
    )


def verify_password(password: str, encoded: str) -> bool:
    """Return whether ``password`` matches ``encoded`` (from ``hash_password``).

    Uses the iteration count stored in ``encoded``. Returns False, never raises, for
    a malformed ``encoded`` string, so a damaged row refuses the station.
    """
    parsed = _parse_encoded(encoded)
    if parsed is None:
        return False
    iterations, salt, expected = parsed
    actual = _derive(password, salt=salt, iterations=iterations)
    # Constant time, so response timing does not reveal how much of the hash matched.
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    """Return whether ``encoded`` should be replaced by a fresh ``hash_password``.

    True when its iterations are below ``DEFAULT_ITERATIONS`` (a generated
    password's single iteration is by design, and not below), and for a malformed
    string, which can never verify and is better replaced.
    """
    parsed = _parse_encoded(encoded)
    if parsed is None:
        return True
    iterations, _, _ = parsed
    return GENERATED_PASSWORD_ITERATIONS < iterations < DEFAULT_ITERATIONS


def parse_basic_auth(header_value: str | None) -> BasicCredentials | None:
    """Return the credentials in an ``Authorization`` header value, or None.

    None when the header is missing, its scheme is not ``Basic`` (compared without
    regard to case, RFC 7617), the token is not valid base64 or not UTF-8, or the
    decoded text has no ``:``. The split is on the first ``:``, so the password may
    contain colons.
    """
    if header_value is None:
        return None

    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None

    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None

    username, colon, password = decoded.partition(":")
    if not colon:
        return None
    return BasicCredentials(username=username, password=password)


def _derive(password: str, *, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def _encode_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse_encoded(encoded: str) -> tuple[int, bytes, bytes] | None:
    """Split a stored hash into (iterations, salt, hash), or None if malformed."""
    parts = encoded.split("$")
    if len(parts) != 4:
        return None
    algorithm, iterations_text, salt_text, digest_text = parts
    if algorithm != _ALGORITHM or not (
        iterations_text.isascii() and iterations_text.isdigit()
    ):
        return None

    iterations = int(iterations_text)
    try:
        salt = base64.b64decode(salt_text, validate=True)
        digest = base64.b64decode(digest_text, validate=True)
    except (binascii.Error, ValueError):
        return None

    if iterations < 1 or not salt or not digest:
        return None
    return iterations, salt, digest
