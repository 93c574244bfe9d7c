"""Last-seen times waiting to be written in one batch, in bounded memory."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

# Ten times the stations one process holds: reached only when the database has
# been unreachable for long and stations kept arriving.
DEFAULT_LIMIT = 200_000


class LastSeenBatch:
    """The newest sign of life per station since the last flush.

    At most ``limit`` stations are held: beyond that the oldest entry is
    dropped and counted in ``dropped``. A dropped time is only a last-seen
    time lost, never a message: the next frame of that station brings it back.
    """

    def __init__(self, *, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        # Least recently seen first: that is the end dropped when full.
        self._times: OrderedDict[str, datetime] = OrderedDict()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._times)

    def __setitem__(self, station_id: str, seen_at: datetime) -> None:
        self._times[station_id] = seen_at
        self._times.move_to_end(station_id)
        self._trim()

    def take(self) -> dict[str, datetime]:
        """Everything held, emptying the batch."""
        batch, self._times = dict(self._times), OrderedDict()
        return batch

    def restore(self, batch: dict[str, datetime]) -> None:
        """Put back a batch that could not be written; newer times win."""
        # The restored entries are older than the ones that arrived meanwhile:
        # they go first, so that they are the first dropped.
        merged: OrderedDict[str, datetime] = OrderedDict(batch)
        for station_id, seen_at in self._times.items():
            merged[station_id] = seen_at
            merged.move_to_end(station_id)
        self._times = merged
        self._trim()

    def _trim(self) -> None:
        while len(self._times) > self._limit:
            self._times.popitem(last=False)
            self.dropped += 1
