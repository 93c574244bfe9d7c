"""Frames a station gets wrong: each is answered with the right CALLERROR, the
connection keeps working, nothing is stored, and the server keeps serving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from csms.app import Csms

from conftest import RegisteredStation
from support.frames import boot, raw_station, send_call, send_text
from support.stations import V16, V201

BOTH_VERSIONS = pytest.mark.parametrize("version", [V16, V201])

VALID_STATUS: dict[str, dict[str, Any]] = {
    V16: {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    V201: {
        "timestamp": "2024-05-01T12:00:00Z",
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    },
}


def _status_without(version: str, field: str) -> dict[str, Any]:
    return {key: value for key, value in VALID_STATUS[version].items() if key != field}


def _status_with(version: str, **changes: Any) -> dict[str, Any]:
    return {**VALID_STATUS[version], **changes}


async def _assert_still_works(socket: ClientConnection) -> None:
    answer = await send_call(socket, "Heartbeat", {}, message_id="still-works")
    assert answer[0] == 3
    assert answer[1] == "still-works"
    assert "currentTime" in answer[2]


async def _connector_rows(csms: Csms, station_id: str) -> list[Any]:
    return list((await csms.stations.get(station_id)).connectors)


@pytest.mark.parametrize(
    ("version", "code"), [(V16, "FormationViolation"), (V201, "RpcFrameworkError")]
)
async def test_invalid_json_is_answered_with_message_id_minus_one(
    ocpp_url: str, station: RegisteredStation, version: str, code: str
) -> None:
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        await boot(socket, version)

        answer = await send_text(socket, '[2, "m-1", "Heartbeat", {')

        assert answer[:3] == [4, "-1", code]
        await _assert_still_works(socket)


@BOTH_VERSIONS
async def test_unknown_action_is_answered_not_implemented(
    ocpp_url: str, station: RegisteredStation, version: str
) -> None:
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        await boot(socket, version)

        answer = await send_call(socket, "FooBar", {}, message_id="foo")

        assert answer[:3] == [4, "foo", "NotImplemented"]
        await _assert_still_works(socket)


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (V16, "SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----"}),
        (
            V201,
            "Get15118EVCertificate",
            {
                "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
                "action": "Install",
                "exiRequest": "AAAA",
            },
        ),
    ],
)
async def test_known_action_this_csms_does_not_handle_is_not_supported(
    ocpp_url: str,
    station: RegisteredStation,
    version: str,
    action: str,
    payload: dict[str, Any],
) -> None:
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        await boot(socket, version)

        answer = await send_call(socket, action, payload, message_id="known")

        assert answer[:3] == [4, "known", "NotSupported"]
        await _assert_still_works(socket)


@pytest.mark.parametrize(
    ("version", "payload", "code"),
    [
        (V16, _status_without(V16, "status"), "OccurenceConstraintViolation"),
        (
            V201,
            _status_without(V201, "connectorStatus"),
            "OccurrenceConstraintViolation",
        ),
        (V16, _status_with(V16, connectorId="1"), "TypeConstraintViolation"),
        (V201, _status_with(V201, evseId="1"), "TypeConstraintViolation"),
        (V16, _status_with(V16, status="Dancing"), "PropertyConstraintViolation"),
        (
            V201,
            _status_with(V201, connectorStatus="Dancing"),
            "PropertyConstraintViolation",
        ),
        (V16, _status_with(V16, colour="red"), "FormationViolation"),
        (V201, _status_with(V201, colour="red"), "FormatViolation"),
    ],
    ids=[
        "missing-16",
        "missing-201",
        "type-16",
        "type-201",
        "enum-16",
        "enum-201",
        "extra-16",
        "extra-201",
    ],
)
async def test_schema_violation_is_answered_with_its_code_and_not_stored(
    csms: Csms,
    ocpp_url: str,
    station: RegisteredStation,
    version: str,
    payload: dict[str, Any],
    code: str,
) -> None:
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        await boot(socket, version)

        answer = await send_call(
            socket, "StatusNotification", payload, message_id="bad"
        )

        assert answer[:3] == [4, "bad", code]
        assert await _connector_rows(csms, station.station_id) == []
        await _assert_still_works(socket)


@pytest.mark.parametrize(
    ("version", "message_type", "code"),
    [(V16, 5, "FormationViolation"), (V201, 9, "MessageTypeNotSupported")],
)
async def test_unknown_message_type_is_refused_with_the_version_code(
    ocpp_url: str,
    station: RegisteredStation,
    version: str,
    code: str,
    message_type: int,
) -> None:
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        await boot(socket, version)

        answer = await send_text(socket, f'[{message_type}, "odd", "Heartbeat", {{}}]')

        assert answer[:3] == [4, "odd", code]
        await _assert_still_works(socket)


async def test_frame_above_the_size_limit_closes_the_connection_with_1009(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    too_big = csms.settings.max_frame_bytes + 1
    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        await boot(socket, V16)

        await socket.send(
            f'[2, "big", "DataTransfer", {{"vendorId": "{"x" * too_big}"}}]'
        )
        await asyncio.wait_for(socket.wait_closed(), 5)

        assert socket.close_code == 1009


@BOTH_VERSIONS
async def test_message_before_an_accepted_boot_is_a_security_error_and_not_stored(
    csms: Csms, ocpp_url: str, station: RegisteredStation, version: str
) -> None:
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        answer = await send_call(
            socket, "StatusNotification", VALID_STATUS[version], message_id="early"
        )

        assert answer[:3] == [4, "early", "SecurityError"]
        assert await _connector_rows(csms, station.station_id) == []


async def test_bad_frames_never_disturb_another_station(
    csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    other_password = "other-password-00002"
    await csms.stations.register("CP-2", password=other_password)

    async with raw_station(ocpp_url, "CP-2", other_password) as other:
        await boot(other, V16)
        async with raw_station(
            ocpp_url, station.station_id, station.password
        ) as socket:
            for text in ("nonsense", "[]", "[2]", '[3, "nobody", {}]', "[2, 1, 2, 3]"):
                await socket.send(text)
            await socket.send("x" * (csms.settings.max_frame_bytes + 1))
            await asyncio.wait_for(socket.wait_closed(), 5)

        await _assert_still_works(other)
