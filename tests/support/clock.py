"""A clock the test moves by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class ManualClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime.now(UTC)
        self._offset = 0.0

    def monotonic(self) -> float:
        return 1000.0 + self._offset

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> None:
        self._offset += seconds
