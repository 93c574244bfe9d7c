"""The WebSocket upgrade: who may open an OCPP connection, and what is refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from csms.app import Csms
from csms.settings import Settings

from conftest import RegisteredStation
from support.clock import ManualClock
from support.stations import V16, V201, basic_auth, connected_station, open_socket


async def _refused(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
) -> Response:
    """The HTTP answer to an upgrade that must fail: the socket never opens."""
    with pytest.raises(InvalidStatus) as refused:
        await open_socket(url, headers=headers, subprotocols=subprotocols)
    return refused.value.response


async def _auth_failures(csms: Csms, station_id: str) -> list[str]:
    events = await csms.stations.list_events(station_id)
    return [
        event.details["reason"]
        for event in events
        if event.kind == "auth_failed" and event.security
    ]


async def test_unknown_station_is_refused_with_404(csms: Csms, ocpp_url: str) -> None:
    response = await _refused(
        f"{ocpp_url}/CP-404",
        headers=basic_auth("CP-404", "some-password-0001"),
        subprotocols=[V16],
    )

    assert response.status_code == 404
    assert await _auth_failures(csms, "CP-404") == ["unknown_station"]


async def test_wrong_password_is_refused_with_401_and_a_basic_challenge(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    response = await _refused(
        f"{ocpp_url}/{station.station_id}",
        headers=basic_auth(station.station_id, "not-the-password-01"),
        subprotocols=[V16],
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert await _auth_failures(csms, station.station_id) == ["wrong_password"]
    assert (await csms.stations.get(station.station_id)).online is False


async def test_user_name_other_than_the_station_id_is_refused_with_401(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    response = await _refused(
        f"{ocpp_url}/{station.station_id}",
        headers=basic_auth("CP-2", station.password),
        subprotocols=[V16],
    )

    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert await _auth_failures(csms, station.station_id) == ["username_mismatch"]


async def test_missing_authorization_is_refused_with_401(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    response = await _refused(f"{ocpp_url}/{station.station_id}", subprotocols=[V16])

    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert await _auth_failures(csms, station.station_id) == ["missing_credentials"]


@pytest.mark.parametrize("offered", [None, ["chat"]], ids=["none", "chat"])
async def test_upgrade_without_an_ocpp_subprotocol_is_refused_with_400(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    offered: list[str] | None,
) -> None:
    response = await _refused(
        f"{ocpp_url}/{station.station_id}",
        headers=basic_auth(station.station_id, station.password),
        subprotocols=offered,
    )

    assert response.status_code == 400
    assert b"ocpp1.6" in response.body
    assert b"ocpp2.0.1" in response.body
    assert csms.gateway.is_connected(station.station_id) is False


@pytest.mark.parametrize("path", ["/other/CP-1", "/ocpp/", "/ocpp/CP-1/extra"])
async def test_path_other_than_ocpp_station_id_is_refused_with_404(
    csms: Csms, station: RegisteredStation, path: str
) -> None:
    response = await _refused(
        f"ws://127.0.0.1:{csms.ocpp_port}{path}",
        headers=basic_auth(station.station_id, station.password),
        subprotocols=[V16],
    )

    assert response.status_code == 404
    assert csms.gateway.is_connected(station.station_id) is False


async def test_station_offering_both_versions_gets_ocpp201(
    ocpp_url: str, station: RegisteredStation
) -> None:
    socket = await open_socket(
        f"{ocpp_url}/{station.station_id}",
        headers=basic_auth(station.station_id, station.password),
        subprotocols=[V16, V201],
    )
    try:
        assert socket.subprotocol == V201
    finally:
        await socket.close()


async def test_failed_attempts_delay_but_never_lock_out_the_real_station(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    # Two wrong guesses from this address: the next attempt waits 0.25 s * 2.
    for _ in range(2):
        response = await _refused(
            f"{ocpp_url}/{station.station_id}",
            headers=basic_auth(station.station_id, "a-wrong-guess-00001"),
            subprotocols=[V16],
        )
        assert response.status_code == 401

    started = time.monotonic()
    async with connected_station(
        ocpp_url, station.station_id, station.password
    ) as client:
        waited = time.monotonic() - started
        assert csms.gateway.is_connected(client.station_id)

    assert waited >= 0.45
    assert await _auth_failures(csms, station.station_id) == ["wrong_password"] * 2


@pytest.fixture
async def impatient_csms(settings: Settings, clock: ManualClock) -> AsyncIterator[Csms]:
    """A CSMS whose handshakes must finish within one second."""
    app = Csms(
        settings.model_copy(update={"handshake_timeout": timedelta(seconds=1)}),
        clock=clock,
    )
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_throttle_delay_never_outlasts_the_handshake_timeout(
    impatient_csms: Csms,
) -> None:
    csms = impatient_csms
    ocpp_url = f"ws://127.0.0.1:{csms.ocpp_port}/ocpp"
    password = "station-password-0001"
    await csms.stations.register("CP-1", password=password)

    # Three failures: the next attempt would wait 0.25 s * 4 = 1 s, as long as
    # the whole handshake may take.
    for _ in range(3):
        response = await _refused(
            f"{ocpp_url}/CP-1",
            headers=basic_auth("CP-1", "a-wrong-guess-00001"),
            subprotocols=[V16],
        )
        assert response.status_code == 401

    async with connected_station(ocpp_url, "CP-1", password):
        assert csms.gateway.is_connected("CP-1")
