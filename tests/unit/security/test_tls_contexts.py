"""The server TLS contexts and reading a station id from a peer certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from csms.security.certs import CaFiles, write_development_ca
from csms.security.tls import (
    TlsConfigurationError,
    build_mtls_context,
    build_tls_context,
    common_name_of,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    return write_development_ca(tmp_path_factory.mktemp("ca"))


def _cipher_names(context: ssl.SSLContext) -> list[str]:
    return [cipher["name"] for cipher in context.get_ciphers()]


def test_profile_2_context_asks_no_client_certificate(files: CaFiles) -> None:
    context = build_tls_context(
        cert_file=files.server.certificate, key_file=files.server.key
    )

    assert context.verify_mode is ssl.CERT_NONE
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_profile_3_context_requires_a_client_certificate(files: CaFiles) -> None:
    context = build_mtls_context(
        cert_file=files.server.certificate,
        key_file=files.server.key,
        ca_file=files.ca.certificate,
    )

    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_tls_1_2_suites_are_ecdhe_with_aead_only(files: CaFiles) -> None:
    context = build_tls_context(
        cert_file=files.server.certificate, key_file=files.server.key
    )

    tls12 = [
        cipher for cipher in context.get_ciphers() if cipher["protocol"] == "TLSv1.2"
    ]
    assert tls12
    for cipher in tls12:
        assert cipher["kea"] == "kx-ecdhe", cipher["name"]
        assert cipher["aead"] is True, cipher["name"]
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in _cipher_names(context)


def test_compression_and_renegotiation_are_off(files: CaFiles) -> None:
    context = build_tls_context(
        cert_file=files.server.certificate, key_file=files.server.key
    )

    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION


def test_missing_key_file_is_a_configuration_error(
    files: CaFiles, tmp_path: Path
) -> None:
    with pytest.raises(TlsConfigurationError, match=r"missing\.key"):
        build_tls_context(
            cert_file=files.server.certificate, key_file=tmp_path / "missing.key"
        )


def test_unreadable_ca_file_is_a_configuration_error(
    files: CaFiles, tmp_path: Path
) -> None:
    not_a_ca = tmp_path / "ca.pem"
    not_a_ca.write_text("not a certificate\n")

    with pytest.raises(TlsConfigurationError, match="CA file"):
        build_mtls_context(
            cert_file=files.server.certificate,
            key_file=files.server.key,
            ca_file=not_a_ca,
        )


def test_common_name_is_read_from_the_subject() -> None:
    certificate = {
        "subject": (
            (("organizationName", "Acme"),),
            (("commonName", "CP-42"),),
        )
    }

    assert common_name_of(certificate) == "CP-42"


@pytest.mark.parametrize(
    "certificate",
    [
        None,
        {},
        {"subject": ((("organizationName", "Acme"),),)},
        {"subject": ((("commonName", "CP-1"),), (("commonName", "CP-2"),))},
    ],
    ids=["none", "empty", "no-common-name", "two-common-names"],
)
def test_no_or_ambiguous_common_name_names_no_station(
    certificate: dict[str, object] | None,
) -> None:
    assert common_name_of(certificate) is None
