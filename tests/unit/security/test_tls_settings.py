"""Which TLS listeners the settings turn on, and incomplete TLS settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.settings import Settings

CERT = Path("server.pem")
KEY = Path("server.key")
CA = Path("ca.pem")


def test_without_tls_files_only_profile_1_is_served() -> None:
    settings = Settings()

    assert settings.tls_enabled is False
    assert settings.mtls_enabled is False


def test_certificate_and_key_turn_on_profile_2_only() -> None:
    settings = Settings(tls_cert_file=CERT, tls_key_file=KEY)

    assert settings.tls_enabled is True
    assert settings.mtls_enabled is False


def test_a_ca_file_turns_on_profile_3_too() -> None:
    settings = Settings(tls_cert_file=CERT, tls_key_file=KEY, tls_ca_file=CA)

    assert settings.tls_enabled is True
    assert settings.mtls_enabled is True


def test_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(ValueError, match="CSMS_TLS_KEY_FILE"):
        Settings(tls_cert_file=CERT)


def test_ca_file_without_a_server_certificate_is_refused() -> None:
    with pytest.raises(ValueError, match="CSMS_TLS_CA_FILE needs"):
        Settings(tls_ca_file=CA)
