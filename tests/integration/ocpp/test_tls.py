"""Security profiles 2 (TLS + Basic auth) and 3 (mutual TLS) over real sockets.

The CSMS here listens three times: plain WebSocket (profile 1), TLS (profile 2)
and mutual TLS (profile 3), with certificates from a development CA made once per
module.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from ocpp.v16 import call as call16
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.http11 import Response

from csms.app import Csms
from csms.settings import Settings

from conftest import OPERATOR_TOKEN
from support.clock import ManualClock
from support.stations import (
    V16,
    StationClient,
    basic_auth,
    connected_station,
    open_socket,
)
from support.tls import (
    DevelopmentPki,
    client_context,
    connected_tls_station,
    open_tls_socket,
)

PASSWORD = "station-password-0001"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevelopmentPki:
    return DevelopmentPki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_csms(
    database_url: str, clock: ManualClock, pki: DevelopmentPki
) -> AsyncIterator[Csms]:
    settings = Settings(
        database_url=database_url,
        http_host="127.0.0.1",
        http_port=0,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        ocpp_tls_port=0,
        ocpp_mtls_port=0,
        tls_cert_file=pki.server.certificate,
        tls_key_file=pki.server.key,
        tls_ca_file=pki.ca_file,
        operator_bootstrap_token=OPERATOR_TOKEN,  # type: ignore[arg-type]
        liveness_check_interval=timedelta(hours=1),
    )
    app = Csms(settings, clock=clock)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def _plain_url(csms: Csms) -> str:
    return f"ws://127.0.0.1:{csms.gateway.port}/ocpp"


def _tls_url(csms: Csms) -> str:
    return f"wss://127.0.0.1:{csms.gateway.tls_port}/ocpp"


def _mtls_url(csms: Csms) -> str:
    return f"wss://localhost:{csms.gateway.mtls_port}/ocpp"


async def _security_events(csms: Csms, station_id: str) -> list[tuple[str, str]]:
    events = await csms.stations.list_events(station_id)
    return [(event.kind, event.details["reason"]) for event in events if event.security]


async def _boot_is_accepted(client: StationClient) -> None:
    answer = await client.call(
        call16.BootNotification(charge_point_vendor="Acme", charge_point_model="T1")
    )
    assert answer.status == "Accepted"


async def _refused_over_tls(
    url: str, ssl_context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> Response:
    with pytest.raises(InvalidStatus) as refused:
        await open_tls_socket(url, ssl_context=ssl_context, headers=headers)
    return refused.value.response


async def test_profile_2_station_boots_over_tls_with_basic_auth(
    tls_csms: Csms, pki: DevelopmentPki
) -> None:
    await tls_csms.stations.register("CP-2", password=PASSWORD, security_profile=2)

    async with connected_tls_station(
        _tls_url(tls_csms), "CP-2", ssl_context=client_context(pki), password=PASSWORD
    ) as client:
        await _boot_is_accepted(client)
        assert tls_csms.gateway.is_connected("CP-2")

    assert await _security_events(tls_csms, "CP-2") == []


async def test_profile_2_station_with_a_wrong_password_is_refused_over_tls(
    tls_csms: Csms, pki: DevelopmentPki
) -> None:
    await tls_csms.stations.register("CP-2", password=PASSWORD, security_profile=2)

    response = await _refused_over_tls(
        f"{_tls_url(tls_csms)}/CP-2",
        client_context(pki),
        basic_auth("CP-2", "not-the-password-01"),
    )

    assert response.status_code == 401
    assert await _security_events(tls_csms, "CP-2") == [
        ("auth_failed", "wrong_password")
    ]


async def test_profile_3_station_connects_with_its_client_certificate(
    tls_csms: Csms, pki: DevelopmentPki
) -> None:
    await tls_csms.stations.register("CP-3", security_profile=3)
    context = client_context(pki, certificate=pki.station("CP-3"))

    async with connected_tls_station(
        _mtls_url(tls_csms), "CP-3", ssl_context=context
    ) as client:
        await _boot_is_accepted(client)
        assert tls_csms.gateway.is_connected("CP-3")


async def test_certificate_naming_another_station_is_refused_and_recorded(
    tls_csms: Csms, pki: DevelopmentPki
) -> None:
    await tls_csms.stations.register("CP-3", security_profile=3)
    await tls_csms.stations.register("CP-OTHER", security_profile=3)
    context = client_context(pki, certificate=pki.station("CP-OTHER"))

    response = await _refused_over_tls(f"{_mtls_url(tls_csms)}/CP-3", context)

    assert response.status_code == 401
    assert tls_csms.gateway.is_connected("CP-3") is False
    events = await tls_csms.stations.list_events("CP-3")
    assert [(e.kind, e.details["certificate_station_id"]) for e in events] == [
        ("certificate_mismatch", "CP-OTHER")
    ]


async def test_profile_2_station_on_the_plain_port_is_refused_as_a_downgrade(
    tls_csms: Csms,
) -> None:
    await tls_csms.stations.register("CP-2", password=PASSWORD, security_profile=2)

    with pytest.raises(InvalidStatus) as refused:
        await open_socket(
            f"{_plain_url(tls_csms)}/CP-2",
            headers=basic_auth("CP-2", PASSWORD),
            subprotocols=[V16],
        )

    # Answered exactly like a wrong password: the plain port confirms nothing.
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert await _security_events(tls_csms, "CP-2") == [
        ("profile_downgrade", "profile_downgrade")
    ]


async def test_profile_3_station_on_the_tls_port_is_refused_as_a_downgrade(
    tls_csms: Csms, pki: DevelopmentPki
) -> None:
    await tls_csms.stations.register("CP-3", password=PASSWORD, security_profile=3)

    response = await _refused_over_tls(
        f"{_tls_url(tls_csms)}/CP-3",
        client_context(pki, certificate=pki.station("CP-3")),
        basic_auth("CP-3", PASSWORD),
    )

    assert response.status_code == 401
    events = await tls_csms.stations.list_events("CP-3")
    assert [(e.kind, e.details["station_security_profile"]) for e in events] == [
        ("profile_downgrade", 3)
    ]


async def test_a_downgrade_attempt_slows_the_next_handshake(
    tls_csms: Csms,
) -> None:
    await tls_csms.stations.register("CP-2", password=PASSWORD, security_profile=2)
    with pytest.raises(InvalidStatus):
        await open_socket(
            f"{_plain_url(tls_csms)}/CP-2",
            headers=basic_auth("CP-2", PASSWORD),
            subprotocols=[V16],
        )

    # One failure from this address: the next attempt waits the base 0.25 s.
    started = time.monotonic()
    with pytest.raises(InvalidStatus):
        await open_socket(
            f"{_plain_url(tls_csms)}/CP-2",
            headers=basic_auth("CP-2", PASSWORD),
            subprotocols=[V16],
        )

    assert time.monotonic() - started >= 0.2


async def test_profile_1_station_may_use_a_higher_profile(
    tls_csms: Csms, pki: DevelopmentPki
) -> None:
    await tls_csms.stations.register("CP-1", password=PASSWORD)

    async with connected_station(_plain_url(tls_csms), "CP-1", PASSWORD):
        assert tls_csms.gateway.is_connected("CP-1")
    async with connected_tls_station(
        _tls_url(tls_csms), "CP-1", ssl_context=client_context(pki), password=PASSWORD
    ) as client:
        await _boot_is_accepted(client)


async def test_client_without_a_certificate_fails_the_mtls_handshake(
    tls_csms: Csms, pki: DevelopmentPki
) -> None:
    await tls_csms.stations.register("CP-3", security_profile=3)

    # With TLS 1.3 the client learns of the refusal only when it reads the
    # server's first bytes, so websockets reports a failed opening handshake.
    with pytest.raises((ssl.SSLError, InvalidHandshake, ConnectionError)) as failed:
        await open_tls_socket(
            f"{_mtls_url(tls_csms)}/CP-3", ssl_context=client_context(pki)
        )

    assert not isinstance(failed.value, InvalidStatus)
    assert tls_csms.gateway.is_connected("CP-3") is False


async def test_tls_1_1_is_refused(tls_csms: Csms, pki: DevelopmentPki) -> None:
    await tls_csms.stations.register("CP-2", password=PASSWORD, security_profile=2)
    url = f"{_tls_url(tls_csms)}/CP-2"
    headers = basic_auth("CP-2", PASSWORD)
    try:
        outdated = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_1)
    except (ssl.SSLError, ValueError) as exc:
        pytest.skip(f"this OpenSSL cannot even offer TLS 1.1: {exc}")

    # The same weak-defaults client, allowed TLS 1.2, gets in: what fails below
    # fails for the protocol version alone.
    control = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    socket = await open_tls_socket(url, ssl_context=control, headers=headers)
    await socket.close()

    # OpenSSL answers with a protocol_version alert, which the client reports
    # as an SSL error or, when it reads after the server hung up, a reset.
    with pytest.raises((ssl.SSLError, ConnectionError)) as failed:
        await open_tls_socket(url, ssl_context=outdated, headers=headers)

    if "NO_PROTOCOLS_AVAILABLE" in str(failed.value).upper():
        pytest.skip("this OpenSSL refuses to send a TLS 1.1 hello at all")
