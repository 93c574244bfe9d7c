"""Which connection speaks for which station: the newest authenticated one wins."""

from __future__ import annotations

from typing import Generic, TypeVar

_Connection = TypeVar("_Connection")


class ConnectionRegistry(Generic[_Connection]):
    def __init__(self) -> None:
        self._by_station: dict[str, _Connection] = {}

    def __len__(self) -> int:
        return len(self._by_station)

    def get(self, station_id: str) -> _Connection | None:
        return self._by_station.get(station_id)

    def register(self, station_id: str, connection: _Connection) -> _Connection | None:
        """Make ``connection`` the station's; returns the one it replaces, if any."""
        previous = self._by_station.get(station_id)
        self._by_station[station_id] = connection
        return previous if previous is not connection else None

    def unregister(self, station_id: str, connection: _Connection) -> bool:
        """Remove ``connection`` if it is still the station's current one.

        Closing a replaced socket must never remove its successor, so this is a
        no-op (returning False) for any connection but the current one.
        """
        if self._by_station.get(station_id) is connection:
            del self._by_station[station_id]
            return True
        return False

    def station_ids(self) -> list[str]:
        return list(self._by_station)
