"""A slow-down for failed station authentication on the WebSocket upgrade.

Failures are counted twice: per (station id, source address) pair and per source
address over every station id tried from it. The handshake waits the larger of the
two delays before it checks the password, then checks it as usual: a delay, never a
lockout. An attacker guessing from their own address therefore never slows the real
station, which connects from another address; only stations sharing an address
with the attacker (the same NAT) are slowed, and still get in once they wait.

A failure is forgotten once ``window`` seconds pass without a newer failure on the
same key: a steady attacker stays at the full delay, a quiet one starts over. One
count and one timestamp per key keep every entry the same small size. Each map
holds at most ``max_tracked`` keys and drops the one whose last failure is oldest,
so spraying many addresses or ids costs the attacker effort but us no more memory.

Not safe to share between threads; the asyncio gateway calls it from one loop.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

# 2**1000 still fits a float, and any sane base delay has hit max_delay long before.
_MAX_EXPONENT = 1000

_Key = TypeVar("_Key")


class Clock(Protocol):
    """The only part of a clock the throttle needs."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...


@dataclass(slots=True)
class _Failures:
    count: int
    last_at: float


class _FailureCounter(Generic[_Key]):
    """Recent failures per key, bounded in size, oldest-last-failure evicted first."""

    def __init__(self, *, window: float, max_tracked: int) -> None:
        self._window = window
        self._max_tracked = max_tracked
        # Ordered by last failure, so expired and evictable entries sit at the front.
        self._entries: OrderedDict[_Key, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def count(self, key: _Key, *, now: float) -> int:
        entry = self._entries.get(key)
        if entry is None:
            return 0
        if now - entry.last_at >= self._window:
            del self._entries[key]
            return 0
        return entry.count

    def add(self, key: _Key, *, now: float) -> None:
        self._forget_expired(now=now)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Failures(count=1, last_at=now)
        else:
            entry.count += 1
            entry.last_at = now
            self._entries.move_to_end(key)

        while len(self._entries) > self._max_tracked:
            self._entries.popitem(last=False)

    def subtract(self, key: _Key, amount: int, *, now: float) -> None:
        remaining = self.count(key, now=now) - amount
        if remaining <= 0:
            self._entries.pop(key, None)
        else:
            self._entries[key].count = remaining

    def _forget_expired(self, *, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.last_at < self._window:
                return
            self._entries.popitem(last=False)


class AuthThrottle:
    """Slows down failed station authentication without locking the real station out.

    Counts per (station id, source address) and per source address; see the module
    docstring for how failures are counted, forgotten and bounded.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        base_delay: float = 0.25,
        max_delay: float = 30.0,
        window: float = 300.0,
        max_tracked: int = 100_000,
    ) -> None:
        """Delays run ``base_delay * 2**(n - 1)`` for n recent failures, at most
        ``max_delay``; see the module docstring for ``window`` and ``max_tracked``.
        """
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if window <= 0:
            raise ValueError("window must be positive")
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")

        self._clock = clock
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._pairs: _FailureCounter[tuple[str, str]] = _FailureCounter(
            window=window, max_tracked=max_tracked
        )
        self._addresses: _FailureCounter[str] = _FailureCounter(
            window=window, max_tracked=max_tracked
        )

    def delay_for(self, *, station_id: str, address: str) -> float:
        """Seconds the handshake should wait before checking the credentials.

        0.0 when neither the pair nor the address failed recently.
        """
        now = self._clock.monotonic()
        pair_failures = self._pairs.count((station_id, address), now=now)
        address_failures = self._addresses.count(address, now=now)
        return self._delay(max(pair_failures, address_failures))

    def record_failure(self, *, station_id: str, address: str) -> None:
        """Count a refused password (or unknown station id) from ``address``."""
        now = self._clock.monotonic()
        self._pairs.add((station_id, address), now=now)
        self._addresses.add(address, now=now)

    def record_success(self, *, station_id: str, address: str) -> None:
        """Forget this pair's failures, and only those.

        Failures of other station ids from the same address still count for it, so
        one valid credential cannot wipe a scanner's record.
        """
        now = self._clock.monotonic()
        pair_failures = self._pairs.count((station_id, address), now=now)
        self._pairs.subtract((station_id, address), pair_failures, now=now)
        self._addresses.subtract(address, pair_failures, now=now)

    def failures(self, *, address: str) -> int:
        """Recent failures from ``address`` over all station ids."""
        return self._addresses.count(address, now=self._clock.monotonic())

    def _delay(self, failure_count: int) -> float:
        if failure_count == 0:
            return 0.0
        exponent = min(failure_count - 1, _MAX_EXPONENT)
        return min(self._base_delay * 2.0**exponent, self._max_delay)
