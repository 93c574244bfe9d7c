"""The station state rules, from connector statuses and the link."""

from __future__ import annotations

import pytest

from csms.stations.state import ConnectorStatus, StationState, derive_station_state


def _connectors(*statuses: tuple[int, int, str]) -> list[ConnectorStatus]:
    return [
        ConnectorStatus(evse, connector, status) for evse, connector, status in statuses
    ]


def test_booted_online_station_without_connectors_is_available() -> None:
    state = derive_station_state(online=True, booted=True, connectors=[])

    assert state is StationState.AVAILABLE


@pytest.mark.parametrize(("online", "booted"), [(False, True), (True, False)])
def test_offline_or_never_booted_station_is_unavailable(
    online: bool, booted: bool
) -> None:
    connectors = _connectors((1, 1, "Available"))

    state = derive_station_state(online=online, booted=booted, connectors=connectors)

    assert state is StationState.UNAVAILABLE


@pytest.mark.parametrize(
    "status", ["Charging", "SuspendedEV", "SuspendedEVSE", "Occupied"]
)
def test_any_charging_connector_makes_the_station_charging(status: str) -> None:
    connectors = _connectors((1, 1, "Available"), (2, 2, status))

    state = derive_station_state(online=True, booted=True, connectors=connectors)

    assert state is StationState.CHARGING


def test_charging_station_stays_charging_when_its_link_is_lost() -> None:
    connectors = _connectors((1, 1, "Charging"))

    state = derive_station_state(online=False, booted=True, connectors=connectors)

    assert state is StationState.CHARGING


def test_every_connector_out_of_order_makes_the_station_unavailable() -> None:
    connectors = _connectors((1, 1, "Unavailable"), (2, 2, "Faulted"))

    state = derive_station_state(online=True, booted=True, connectors=connectors)

    assert state is StationState.UNAVAILABLE


def test_one_usable_connector_keeps_the_station_available() -> None:
    connectors = _connectors((1, 1, "Faulted"), (2, 2, "Preparing"))

    state = derive_station_state(online=True, booted=True, connectors=connectors)

    assert state is StationState.AVAILABLE


@pytest.mark.parametrize("status", ["Unavailable", "Faulted"])
def test_connector_zero_out_of_order_makes_the_whole_station_unavailable(
    status: str,
) -> None:
    connectors = _connectors((0, 0, status), (1, 1, "Available"))

    state = derive_station_state(online=True, booted=True, connectors=connectors)

    assert state is StationState.UNAVAILABLE


def test_connector_zero_available_alone_keeps_the_station_available() -> None:
    connectors = _connectors((0, 0, "Available"))

    state = derive_station_state(online=True, booted=True, connectors=connectors)

    assert state is StationState.AVAILABLE


def test_charging_wins_over_a_faulted_connector_zero() -> None:
    connectors = _connectors((0, 0, "Faulted"), (1, 1, "Charging"))

    state = derive_station_state(online=True, booted=True, connectors=connectors)

    assert state is StationState.CHARGING
