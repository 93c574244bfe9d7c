"""Calls from the CSMS to a station, without a socket: correlation and turn-taking."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
import pytest

from csms.ocpp.calls import CallFailed, CallTimeout, OutgoingCalls
from csms.ocpp.framing import CallError, CallResult


class FakeLink:
    """Stands in for the socket: keeps every frame sent, in order."""

    def __init__(self) -> None:
        self.sent: list[list[Any]] = []
        self._arrived = asyncio.Event()

    async def send(self, text: str) -> None:
        self.sent.append(orjson.loads(text))
        self._arrived.set()

    async def next_frame(self, count: int) -> list[Any]:
        """Wait until ``count`` frames were sent; return the last of them."""
        while len(self.sent) < count:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), 1)
        return self.sent[count - 1]


def _calls() -> OutgoingCalls:
    ids = itertools.count(1)
    return OutgoingCalls(new_message_id=lambda: f"id-{next(ids)}")


async def test_call_sends_a_call_frame_and_returns_the_answer() -> None:
    calls, link = _calls(), FakeLink()
    task = asyncio.create_task(
        calls.call("Reset", {"type": "Soft"}, send=link.send, timeout=1)
    )

    frame = await link.next_frame(1)
    assert calls.resolve(CallResult("id-1", {"status": "Accepted"})) is True

    assert await task == {"status": "Accepted"}
    assert frame == [2, "id-1", "Reset", {"type": "Soft"}]


async def test_callerror_answer_raises_call_failed_with_its_code() -> None:
    calls, link = _calls(), FakeLink()
    task = asyncio.create_task(calls.call("Reset", {}, send=link.send, timeout=1))
    await link.next_frame(1)

    calls.resolve(CallError("id-1", "NotSupported", "no resets", {}))

    with pytest.raises(CallFailed) as failed:
        await task
    assert (failed.value.action, failed.value.code) == ("Reset", "NotSupported")
    assert failed.value.description == "no resets"


async def test_answer_with_another_id_is_refused_and_the_call_still_waits() -> None:
    calls, link = _calls(), FakeLink()
    task = asyncio.create_task(calls.call("Reset", {}, send=link.send, timeout=1))
    await link.next_frame(1)

    assert calls.resolve(CallResult("made-up", {})) is False
    assert not task.done()
    calls.resolve(CallResult("id-1", {"status": "Rejected"}))
    assert await task == {"status": "Rejected"}


async def test_no_answer_in_time_raises_call_timeout_and_drops_a_late_answer() -> None:
    calls, link = _calls(), FakeLink()

    with pytest.raises(CallTimeout) as timed_out:
        await calls.call("Reset", {}, send=link.send, timeout=0.01)

    assert timed_out.value.action == "Reset"
    assert calls.resolve(CallResult("id-1", {})) is False
    assert calls.busy is False


async def test_answer_when_nothing_is_outstanding_is_refused() -> None:
    assert _calls().resolve(CallResult("id-1", {})) is False


async def test_second_call_is_sent_only_after_the_first_is_answered() -> None:
    calls, link = _calls(), FakeLink()
    first = asyncio.create_task(calls.call("A", {}, send=link.send, timeout=1))
    second = asyncio.create_task(calls.call("B", {}, send=link.send, timeout=1))
    await link.next_frame(1)
    await asyncio.sleep(0)

    sent_while_waiting = len(link.sent)
    calls.resolve(CallResult("id-1", {"n": 1}))
    frame = await link.next_frame(2)
    calls.resolve(CallResult("id-2", {"n": 2}))

    assert sent_while_waiting == 1
    assert frame[:3] == [2, "id-2", "B"]
    assert await first == {"n": 1}
    assert await second == {"n": 2}


async def test_fail_all_hands_the_reason_to_the_waiting_call() -> None:
    calls, link = _calls(), FakeLink()
    task = asyncio.create_task(calls.call("Reset", {}, send=link.send, timeout=1))
    await link.next_frame(1)

    calls.fail_all(ConnectionError("link gone"))

    with pytest.raises(ConnectionError, match="link gone"):
        await task
    assert calls.busy is False


async def test_call_whose_send_fails_frees_the_turn() -> None:
    calls = _calls()

    async def broken_send(text: str) -> None:
        raise ConnectionError("closed")

    with pytest.raises(ConnectionError):
        await calls.call("Reset", {}, send=broken_send, timeout=1)

    assert calls.busy is False
    assert calls.resolve(CallResult("id-1", {})) is False


async def test_a_call_whose_turn_does_not_come_in_time_is_never_sent() -> None:
    calls, link = _calls(), FakeLink()
    first = asyncio.create_task(calls.call("A", {}, send=link.send, timeout=5))
    await link.next_frame(1)

    # The second caller gives up while the first call still waits for its answer.
    with pytest.raises(CallTimeout):
        await calls.call("B", {}, send=link.send, timeout=0.05)
    calls.resolve(CallResult("id-1", {"n": 1}))

    assert await first == {"n": 1}
    assert [frame[2] for frame in link.sent] == ["A"]
    assert calls.busy is False


async def test_the_wait_for_the_turn_counts_against_the_answer_time() -> None:
    calls, link = _calls(), FakeLink()
    loop = asyncio.get_running_loop()
    first = asyncio.create_task(calls.call("A", {}, send=link.send, timeout=5))
    await link.next_frame(1)
    started = loop.time()
    second = asyncio.create_task(calls.call("B", {}, send=link.send, timeout=1.2))
    await asyncio.sleep(1.0)
    calls.resolve(CallResult("id-1", {"n": 1}))
    await link.next_frame(2)

    # B was sent after 1 s and is never answered: it times out 1.2 s after it
    # was asked for (not 1.2 s after it was sent, at 2.2 s).
    with pytest.raises(CallTimeout):
        await second
    assert await first == {"n": 1}
    assert loop.time() - started < 1.9
