"""A development certificate authority: a CA, the CSMS's server certificate and
station client certificates, written as PEM files.

For tests and for trying security profile 3 on a laptop, not for production: a
real operator issues station certificates from their own PKI (and, in 2.0.1, via
SignCertificate), which this module does not replace.

Keys are EC P-256: small, fast to make (tests create a CA per session), and
accepted by every TLS 1.2 stack a station ships with. Station certificates follow
the OCPP 2.0.1 certificate properties (part 2, section A00, and the 1.6 security
whitepaper): the subject's commonName carries the station's identity and its
organizationName the operator.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_ORGANIZATION = "CSMS Development"
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
VALIDITY = timedelta(days=365)
# Tolerate a station whose clock runs a little behind ours.
BACKDATE = timedelta(minutes=5)

# TODO: stations cannot get or renew certificates over OCPP (2.0.1 A02/A03
# SignCertificate and CertificateSigned): each is issued by hand, here or elsewhere.
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"


class CertificateError(Exception):
    """A development CA directory that cannot be used as asked."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class WrittenFiles:
    certificate: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CaFiles:
    """What ``write_development_ca`` wrote: the CA and the server's pair."""

    ca: WrittenFiles
    server: WrittenFiles


# -- building ---------------------------------------------------------------------


def build_ca(
    *, organization: str = DEFAULT_ORGANIZATION, now: datetime | None = None
) -> Issued:
    """A self-signed CA that may sign end-entity certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} Root CA"),
        ]
    )
    public_key = key.public_key()
    certificate = (
        _validity(x509.CertificateBuilder(), now)
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(key_cert_sign=True, crl_sign=True, digital_signature=True),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def build_server_certificate(
    ca: Issued, *, hosts: Iterable[str] = DEFAULT_HOSTS, now: datetime | None = None
) -> Issued:
    """The CSMS's certificate, valid for each of ``hosts`` (names or IP addresses).

    ``localhost`` and ``127.0.0.1`` are always included, so local stations and the
    tests can verify it.
    """
    names = list(dict.fromkeys([*hosts, *DEFAULT_HOSTS]))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _organization_of(ca)),
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        ]
    )
    return _issue(
        ca,
        subject=subject,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alternative_names=[_general_name(host) for host in names],
        now=now,
    )


def build_station_certificate(
    ca: Issued,
    station_id: str,
    *,
    organization: str | None = None,
    now: datetime | None = None,
) -> Issued:
    """A client certificate whose commonName is ``station_id``.

    The organizationName is the operator's: ``organization``, or the CA's own.
    """
    subject = x509.Name(
        [
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, organization or _organization_of(ca)
            ),
            x509.NameAttribute(NameOID.COMMON_NAME, station_id),
        ]
    )
    return _issue(
        ca,
        subject=subject,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        alternative_names=[],
        now=now,
    )


def _issue(
    ca: Issued,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    alternative_names: list[x509.GeneralName],
    now: datetime | None,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    ca_key_id = ca.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value
    builder = (
        _validity(x509.CertificateBuilder(), now)
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
            critical=False,
        )
    )
    if alternative_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternative_names), critical=False
        )
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _validity(
    builder: x509.CertificateBuilder, now: datetime | None
) -> x509.CertificateBuilder:
    start = now or datetime.now(UTC)
    return builder.not_valid_before(start - BACKDATE).not_valid_after(start + VALIDITY)


def _key_usage(
    *,
    digital_signature: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _organization_of(ca: Issued) -> str:
    values = ca.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else DEFAULT_ORGANIZATION


# -- files ------------------------------------------------------------------------


def write_development_ca(
    directory: Path,
    *,
    hosts: Iterable[str] = DEFAULT_HOSTS,
    organization: str = DEFAULT_ORGANIZATION,
    overwrite: bool = False,
) -> CaFiles:
    """Write ``ca.pem``/``ca.key`` and ``server.pem``/``server.key`` into ``directory``.

    Refuses to replace an existing CA unless ``overwrite``: every station
    certificate it signed would stop being trusted.
    """
    ca_cert = directory / CA_CERT_FILE
    if ca_cert.exists() and not overwrite:
        raise CertificateError(
            f"{ca_cert} exists; a new CA would invalidate every certificate it signed"
        )
    directory.mkdir(parents=True, exist_ok=True)
    ca = build_ca(organization=organization)
    server = build_server_certificate(ca, hosts=hosts)
    return CaFiles(
        ca=write_issued(ca, certificate=ca_cert, key=directory / CA_KEY_FILE),
        server=write_issued(
            server,
            certificate=directory / SERVER_CERT_FILE,
            key=directory / SERVER_KEY_FILE,
        ),
    )


def write_station_certificate(
    directory: Path, station_id: str, *, organization: str | None = None
) -> WrittenFiles:
    """Write ``<station_id>.pem``/``.key`` signed by the CA in ``directory``."""
    # The id becomes a file name: refuse anything that could leave the directory.
    if not station_id or "/" in station_id or station_id in {".", ".."}:
        raise CertificateError(f"{station_id!r} cannot name a certificate file")
    ca = load_ca(directory)
    station = build_station_certificate(ca, station_id, organization=organization)
    return write_issued(
        station,
        certificate=directory / f"{station_id}.pem",
        key=directory / f"{station_id}.key",
    )


def load_ca(directory: Path) -> Issued:
    """The CA that ``write_development_ca`` wrote into ``directory``."""
    try:
        certificate = x509.load_pem_x509_certificate(
            (directory / CA_CERT_FILE).read_bytes()
        )
        key = serialization.load_pem_private_key(
            (directory / CA_KEY_FILE).read_bytes(), password=None
        )
    except (OSError, ValueError) as exc:
        raise CertificateError(
            f"no usable development CA in {directory}: {exc}"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{directory / CA_KEY_FILE} is not an EC key")
    return Issued(certificate, key)


def write_issued(issued: Issued, *, certificate: Path, key: Path) -> WrittenFiles:
    """Write the certificate (0644) and its unencrypted key (0600) as PEM."""
    _write(
        key,
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    _write(
        certificate,
        issued.certificate.public_bytes(serialization.Encoding.PEM),
        mode=0o644,
    )
    return WrittenFiles(certificate=certificate, key=key)


def _write(path: Path, data: bytes, *, mode: int) -> None:
    # Created with its final mode, so a key is never readable by others, not
    # even for a moment; chmod covers a file that existed with a wider mode.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), mode)
        file.write(data)
