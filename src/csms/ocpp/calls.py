"""Calls from the CSMS to a station: correlation and the one-outstanding-call rule.

No I/O here. The connection asks :class:`OutgoingCalls` to ``begin`` a call,
sends the frame it gets back, and feeds every CALLRESULT / CALLERROR it reads to
``resolve``. OCPP-J (1.6 section 4.1.1; 2.0.1 part 4, 4.1.1) allows one CALL in
flight per direction, so a second ``begin`` waits for the first to finish.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from csms.errors import Conflict
from csms.ocpp.framing import CallError, CallResult, encode_call


class StationNotConnected(Conflict):
    title = "Station not connected"

    def __init__(self, station_id: str) -> None:
        super().__init__(f"Station {station_id!r} is not connected.")
        self.station_id = station_id


class CallFailed(Exception):
    """The station answered our CALL with a CALLERROR (or, with several
    processes, the station's gateway refused to send it: ``GatewayBusy``)."""

    def __init__(self, action: str, error: CallError) -> None:
        super().__init__(f"{action} failed: {error.code} {error.description}".strip())
        self.action = action
        self.code = error.code
        self.description = error.description


class CallTimeout(Exception):
    """The station did not answer our CALL in time."""

    def __init__(self, action: str, timeout: float) -> None:
        super().__init__(f"{action}: no answer within {timeout:g} s")
        self.action = action


class OutgoingCalls:
    def __init__(self, *, new_message_id: Callable[[], str] | None = None) -> None:
        self._new_message_id = new_message_id or (lambda: str(uuid.uuid4()))
        self._turn = asyncio.Lock()
        self._pending: tuple[str, str, asyncio.Future[dict[str, Any]]] | None = None

    @property
    def busy(self) -> bool:
        return self._turn.locked()

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        send: Callable[[str], Any],
        timeout: float,
    ) -> dict[str, Any]:
        """Send one CALL through ``send`` and wait for its answer's payload.

        ``timeout`` counts from now, the wait for an earlier call included: a
        call whose caller has given up is never sent (it raises CallTimeout
        before sending, when its turn did not come in time).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._turn.acquire()
        except TimeoutError as exc:
            raise CallTimeout(action, timeout) from exc
        try:
            message_id = self._new_message_id()
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._pending = (message_id, action, future)
            await send(encode_call(message_id, action, payload))
            return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        except TimeoutError as exc:
            raise CallTimeout(action, timeout) from exc
        finally:
            self._pending = None
            self._turn.release()

    def resolve(self, frame: CallResult | CallError) -> bool:
        """Hand an answer to the call waiting for it; False when none waits for it.

        An answer with an unknown id (late, after a timeout, or made up) is
        dropped: it can never complete a different call.
        """
        if self._pending is None:
            return False
        message_id, action, future = self._pending
        if frame.message_id != message_id or future.done():
            return False
        if isinstance(frame, CallResult):
            future.set_result(frame.payload)
        else:
            future.set_exception(CallFailed(action, frame))
        return True

    def fail_all(self, reason: Exception) -> None:
        """The link is gone: whoever waits gets ``reason`` instead of a timeout."""
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(reason)
