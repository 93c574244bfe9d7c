"""Server TLS contexts for OCPP security profiles 2 and 3, and reading who a
verified client certificate names.

Profile 2 is TLS with a server certificate and HTTP Basic auth inside; profile 3
adds a client certificate the CSMS verifies against its CA, whose commonName is
the station's identity. Both follow the OCPP 2.0.1 TLS rules (part 2, A00, and the
1.6 security whitepaper): TLS 1.2 or newer and ECDHE key exchange with AEAD
ciphers only. TLS 1.3's suites are all AEAD with forward secrecy already.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# TLS 1.2 suites: forward secrecy (ECDHE) and authenticated encryption (GCM,
# ChaCha20-Poly1305), for ECDSA and RSA server keys alike. This covers the four
# suites OCPP requires the CSMS to offer, and excludes CBC, RSA key transport,
# SHA-1 MACs and everything anonymous or export-grade.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"


class TlsConfigurationError(Exception):
    """The configured certificate, key or CA cannot be used."""


def build_tls_context(*, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The context of the profile 2 listener: our certificate, no client one."""
    context = _base_context(cert_file=cert_file, key_file=key_file)
    context.verify_mode = ssl.CERT_NONE
    return context


def build_mtls_context(
    *, cert_file: Path, key_file: Path, ca_file: Path
) -> ssl.SSLContext:
    """The context of the profile 3 listener: a client certificate that chains to
    ``ca_file`` is required, or the handshake fails."""
    # TODO: a handshake refused here (no certificate, an untrusted one, an old
    # protocol) is neither logged nor stored: it fails inside asyncio before any
    # station id is known, so certificate probing leaves the operator no trace.
    context = _base_context(cert_file=cert_file, key_file=key_file)
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigurationError(
            f"cannot load the CA file {ca_file}: {exc}"
        ) from exc
    # TODO: no revocation check (CRL or OCSP): a stolen station key is accepted
    # until its certificate expires or the CA is replaced.
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def common_name_of(peer_certificate: Mapping[str, Any] | None) -> str | None:
    """The subject commonName of a verified peer certificate (``getpeercert()``).

    None when there is no certificate or its subject holds no commonName or more
    than one: an identity must be unambiguous.
    """
    if not peer_certificate:
        return None
    names = [
        value
        for relative_name in peer_certificate.get("subject", ())
        for key, value in relative_name
        if key == "commonName"
    ]
    return str(names[0]) if len(names) == 1 else None


def _base_context(*, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)

    # Compression leaks secrets (CRIME); renegotiation only serves attacks on a
    # station link, whose peers never need it.
    context.options |= ssl.OP_NO_COMPRESSION
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigurationError(
            f"cannot load the certificate {cert_file} with key {key_file}: {exc}"
        ) from exc
    return context
