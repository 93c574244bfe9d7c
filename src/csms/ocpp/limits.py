"""Per-station limits: how fast a station may send, and how often it reconnects.

Pure pieces, fed the monotonic time by the gateway. A flooding station is first
slowed — the gateway stops reading its socket until it may send again, so TCP
pushes back on it alone — and disconnected when it keeps flooding. A station
that reconnects again and again (a loop in its firmware, or two devices sharing
one identity) is reported as flapping, once per window, without being refused.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum


class RateVerdict(Enum):
    ACCEPT = "accept"
    SLOW_DOWN = "slow_down"
    DISCONNECT = "disconnect"


@dataclass(frozen=True, slots=True)
class RateDecision:
    verdict: RateVerdict
    wait: float = 0.0


class MessageRateLimiter:
    """A token bucket for one connection: ``rate`` messages a second sustained,
    bursts of up to ``burst``; ``patience`` slowed messages in a row end the
    connection."""

    def __init__(self, *, rate: float, burst: int, patience: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._patience = patience
        self._tokens = float(burst)
        self._updated = now
        self._slowed_in_a_row = 0

    def admit(self, *, now: float) -> RateDecision:
        if self._rate <= 0:
            return RateDecision(RateVerdict.ACCEPT)
        self._tokens = min(
            self._burst, self._tokens + (now - self._updated) * self._rate
        )
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._slowed_in_a_row = 0
            return RateDecision(RateVerdict.ACCEPT)
        self._slowed_in_a_row += 1
        if self._slowed_in_a_row > self._patience:
            return RateDecision(RateVerdict.DISCONNECT)
        wait = (1.0 - self._tokens) / self._rate
        # The message is admitted after the wait: its token is spent now.
        self._tokens -= 1.0
        return RateDecision(RateVerdict.SLOW_DOWN, wait=wait)


class FlapDetector:
    """Counts connections per station in a sliding window."""

    def __init__(self, *, threshold: int, window: float, max_tracked: int = 100_000):
        self._threshold = threshold
        self._window = window
        self._max_tracked = max_tracked
        self._connects: dict[str, deque[float]] = {}
        self._reported_at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._connects)

    def connected(self, station_id: str, *, now: float) -> bool:
        """Note a connection; True when the station is flapping and this is the
        first time in the window it is reported."""
        times = self._connects.get(station_id)
        if times is None:
            if len(self._connects) >= self._max_tracked:
                # Forget the station that connected longest ago.
                oldest = min(self._connects, key=lambda key: self._connects[key][-1])
                self._connects.pop(oldest)
                self._reported_at.pop(oldest, None)
            times = self._connects[station_id] = deque(maxlen=self._threshold)
        times.append(now)
        if len(times) < self._threshold or now - times[0] > self._window:
            return False
        reported = self._reported_at.get(station_id)
        if reported is not None and now - reported < self._window:
            return False
        self._reported_at[station_id] = now
        return True
