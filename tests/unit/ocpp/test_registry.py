"""Which connection speaks for a station: the newest wins, stale ones never evict it."""

from __future__ import annotations

from csms.ocpp.registry import ConnectionRegistry


class Connection:
    """Anything stands for a connection; identity is what counts."""


def test_first_connection_replaces_nothing() -> None:
    registry: ConnectionRegistry[Connection] = ConnectionRegistry()
    connection = Connection()

    assert registry.register("CP-1", connection) is None
    assert registry.get("CP-1") is connection


def test_newer_connection_replaces_and_returns_the_older() -> None:
    registry: ConnectionRegistry[Connection] = ConnectionRegistry()
    old, new = Connection(), Connection()
    registry.register("CP-1", old)

    replaced = registry.register("CP-1", new)

    assert replaced is old
    assert registry.get("CP-1") is new
    assert len(registry) == 1


def test_registering_the_same_connection_again_replaces_nothing() -> None:
    registry: ConnectionRegistry[Connection] = ConnectionRegistry()
    connection = Connection()
    registry.register("CP-1", connection)

    assert registry.register("CP-1", connection) is None


def test_unregistering_a_replaced_connection_keeps_its_successor() -> None:
    registry: ConnectionRegistry[Connection] = ConnectionRegistry()
    old, new = Connection(), Connection()
    registry.register("CP-1", old)
    registry.register("CP-1", new)

    assert registry.unregister("CP-1", old) is False
    assert registry.get("CP-1") is new


def test_unregistering_the_current_connection_removes_the_station() -> None:
    registry: ConnectionRegistry[Connection] = ConnectionRegistry()
    connection = Connection()
    registry.register("CP-1", connection)

    assert registry.unregister("CP-1", connection) is True
    assert registry.get("CP-1") is None
    assert registry.station_ids() == []


def test_unregistering_an_unknown_station_is_a_no_op() -> None:
    registry: ConnectionRegistry[Connection] = ConnectionRegistry()

    assert registry.unregister("CP-1", Connection()) is False


def test_station_ids_lists_every_connected_station() -> None:
    registry: ConnectionRegistry[Connection] = ConnectionRegistry()
    registry.register("CP-1", Connection())
    registry.register("CP-2", Connection())

    assert sorted(registry.station_ids()) == ["CP-1", "CP-2"]
