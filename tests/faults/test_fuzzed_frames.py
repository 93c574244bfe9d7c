"""Whatever a station sends, the connection handler answers and survives: every
CALL gets a CALLRESULT or a CALLERROR, junk frames never end the connection, and
a payload that breaks the schema is never stored. Property-based: payloads are
drawn from the OCPP JSON schemas the ``ocpp`` package ships, frames from
arbitrary text and bytes, all sent over a real socket to a booted station."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection

from csms.app import Csms
from csms.charging.journal import TransactionMessage
from csms.charging.models import ChargeDetailRecord
from csms.db.engine import create_sessionmaker
from csms.simulator.station import V16, V201

from conftest import RegisteredStation
from support.frames import boot, raw_station, receive_frame
from support.schemas import broken_payloads, valid_payloads

_T = TypeVar("_T")
VERSIONS = pytest.mark.parametrize("version", [V16, V201])
EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ACTIONS = {
    V16: [
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
        "StatusNotification",
        "Authorize",
        "Heartbeat",
        "DataTransfer",
    ],
    V201: [
        "TransactionEvent",
        "StatusNotification",
        "Authorize",
        "Heartbeat",
        "MeterValues",
        "SecurityEventNotification",
    ],
}
JUNK = (
    st.text(max_size=200)
    | st.binary(max_size=200)
    | st.lists(
        st.none()
        | st.integers()
        | st.text(max_size=20)
        | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        max_size=6,
    ).map(lambda frame: json.dumps(frame))
)
_ids = itertools.count(1)


def _run_in_thread_loop(
    loop: asyncio.AbstractEventLoop,
) -> Callable[[Awaitable[_T]], _T]:
    """Hypothesis drives a plain function; the socket lives on the test's loop."""

    def run(work: Awaitable[_T]) -> _T:
        return asyncio.run_coroutine_threadsafe(work, loop).result(30)  # type: ignore[arg-type]

    return run


async def _answer_to(socket: ClientConnection, message_id: str) -> list[Any]:
    """Read frames until the answer to ``message_id``; any other is an error frame."""
    while True:
        frame = list(await receive_frame(socket))
        if frame[1] == message_id:
            return frame
        assert frame[0] == 4, frame


async def _call(socket: ClientConnection, action: str, payload: Any) -> list[Any]:
    message_id = f"fuzz-{next(_ids)}"
    await socket.send(json.dumps([2, message_id, action, payload]))
    return await _answer_to(socket, message_id)


async def _stored_rows(csms: Csms) -> tuple[int, int]:
    async with create_sessionmaker(csms.engine)() as session:
        records = await session.scalar(select(func.count(ChargeDetailRecord.id)))
        messages = await session.scalar(select(func.count(TransactionMessage.id)))
    return int(records or 0), int(messages or 0)


@VERSIONS
async def test_every_valid_call_is_answered_and_the_link_survives(
    version: str, csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    run = _run_in_thread_loop(asyncio.get_running_loop())
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        await boot(socket, version)

        @EXAMPLES
        @given(st.data())
        def check(data: st.DataObject) -> None:
            action = data.draw(st.sampled_from(ACTIONS[version]))
            payload = data.draw(valid_payloads(version, action))
            answer = run(_call(socket, action, payload))
            assert answer[0] in (3, 4), answer
            if answer[0] == 4:
                # Our own fault or an unsupported action, never a crash: the
                # handler stays up and says why.
                assert answer[2] in {
                    "NotSupported",
                    "NotImplemented",
                    "FormationViolation",
                    "FormatViolation",
                    "PropertyConstraintViolation",
                    "OccurenceConstraintViolation",
                    "OccurrenceConstraintViolation",
                    "TypeConstraintViolation",
                    "ProtocolError",
                    "GenericError",
                    "SecurityError",
                }, answer

        await asyncio.to_thread(check)
        heartbeat = await _call(socket, "Heartbeat", {})
        assert heartbeat[0] == 3


@VERSIONS
async def test_a_payload_that_breaks_the_schema_is_refused_and_never_stored(
    version: str, csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    run = _run_in_thread_loop(asyncio.get_running_loop())
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        await boot(socket, version)
        before = await _stored_rows(csms)

        @EXAMPLES
        @given(st.data())
        def check(data: st.DataObject) -> None:
            action = data.draw(
                st.sampled_from([a for a in ACTIONS[version] if a != "Heartbeat"])
            )
            payload = data.draw(broken_payloads(version, action))
            answer = run(_call(socket, action, payload))
            assert answer[0] == 4, (action, payload, answer)

        await asyncio.to_thread(check)
        assert await _stored_rows(csms) == before
        heartbeat = await _call(socket, "Heartbeat", {})
        assert heartbeat[0] == 3


@VERSIONS
async def test_junk_frames_never_end_the_connection(
    version: str, csms: Csms, ocpp_url: str, station: RegisteredStation
) -> None:
    run = _run_in_thread_loop(asyncio.get_running_loop())
    async with raw_station(
        ocpp_url, station.station_id, station.password, version=version
    ) as socket:
        await boot(socket, version)

        async def send_junk_then_probe(junk: str | bytes) -> list[Any]:
            await socket.send(junk)
            return await _call(socket, "Heartbeat", {})

        @EXAMPLES
        @given(JUNK)
        def check(junk: str | bytes) -> None:
            answer = run(send_junk_then_probe(junk))
            assert answer[0] == 3, answer

        await asyncio.to_thread(check)
