"""The development CA: what its certificates say, that they chain, how keys are kept."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.security.certs import (
    CertificateError,
    Issued,
    build_ca,
    build_server_certificate,
    build_station_certificate,
    load_ca,
    write_development_ca,
    write_station_certificate,
)


@pytest.fixture(scope="module")
def ca() -> Issued:
    return build_ca(organization="Acme Charging")


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in name.get_attributes_for_oid(oid)]


def test_station_certificate_names_the_station_and_the_operator(ca: Issued) -> None:
    station = build_station_certificate(ca, "CP-42")

    subject = station.certificate.subject
    assert _attribute(subject, NameOID.COMMON_NAME) == ["CP-42"]
    assert _attribute(subject, NameOID.ORGANIZATION_NAME) == ["Acme Charging"]


def test_station_certificate_may_name_another_operator(ca: Issued) -> None:
    station = build_station_certificate(ca, "CP-42", organization="Other CSO")

    assert _attribute(station.certificate.subject, NameOID.ORGANIZATION_NAME) == [
        "Other CSO"
    ]


def test_station_certificate_chains_to_the_ca_and_serves_clients_only(
    ca: Issued,
) -> None:
    station = build_station_certificate(ca, "CP-42")

    station.certificate.verify_directly_issued_by(ca.certificate)
    usage = station.certificate.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    ).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_certificate_of_another_ca_with_the_same_name_does_not_chain(
    ca: Issued,
) -> None:
    impostor = build_ca(organization="Acme Charging")
    stranger = build_station_certificate(impostor, "CP-42")

    assert stranger.certificate.issuer == ca.certificate.subject
    with pytest.raises(InvalidSignature):
        stranger.certificate.verify_directly_issued_by(ca.certificate)


def test_ca_is_self_signed_and_may_only_sign_end_entities(ca: Issued) -> None:
    ca.certificate.verify_directly_issued_by(ca.certificate)
    constraints = ca.certificate.extensions.get_extension_for_class(
        x509.BasicConstraints
    ).value
    assert constraints.ca is True
    assert constraints.path_length == 0


def test_ca_is_valid_for_one_year() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)

    certificate = build_ca(now=now).certificate

    assert certificate.not_valid_after_utc == now + timedelta(days=365)
    assert certificate.not_valid_before_utc <= now


def test_server_certificate_always_covers_localhost(ca: Issued) -> None:
    server = build_server_certificate(ca, hosts=["csms.example.org", "10.0.0.5"])

    names = server.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert names.get_values_for_type(x509.DNSName) == ["csms.example.org", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    server.certificate.verify_directly_issued_by(ca.certificate)


def test_written_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    written = write_development_ca(tmp_path)
    station = write_station_certificate(tmp_path, "CP-42")

    for key in (written.ca.key, written.server.key, station.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(station.certificate.stat().st_mode) == 0o644


def test_written_station_certificate_chains_to_the_written_ca(tmp_path: Path) -> None:
    write_development_ca(tmp_path)

    station = write_station_certificate(tmp_path, "CP-42")

    certificate = x509.load_pem_x509_certificate(station.certificate.read_bytes())
    assert _attribute(certificate.subject, NameOID.COMMON_NAME) == ["CP-42"]
    certificate.verify_directly_issued_by(load_ca(tmp_path).certificate)


def test_an_existing_ca_is_not_replaced_by_accident(tmp_path: Path) -> None:
    first = write_development_ca(tmp_path)
    before = first.ca.certificate.read_bytes()

    with pytest.raises(CertificateError, match="exists"):
        write_development_ca(tmp_path)

    assert first.ca.certificate.read_bytes() == before
    write_development_ca(tmp_path, overwrite=True)
    assert first.ca.certificate.read_bytes() != before


def test_station_certificate_without_a_ca_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="no usable development CA"):
        write_station_certificate(tmp_path, "CP-42")


@pytest.mark.parametrize("station_id", ["", "..", "../CP-42"])
def test_station_id_that_would_leave_the_directory_is_refused(
    tmp_path: Path, station_id: str
) -> None:
    write_development_ca(tmp_path)

    with pytest.raises(CertificateError, match="cannot name"):
        write_station_certificate(tmp_path, station_id)
