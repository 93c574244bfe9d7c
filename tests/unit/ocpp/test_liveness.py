"""The liveness rules, without sockets: who is pinged, dead or silent, and when."""

from __future__ import annotations

import pytest

from csms.ocpp.liveness import LivenessMonitor, LivenessPolicy

STATION = "CP-1"
START = 1_000.0
POLICY = LivenessPolicy(
    heartbeat_window=270.0,
    ping_interval_idle=180.0,
    ping_interval_charging=5.0,
    ping_timeout=10.0,
)


@pytest.fixture
def monitor() -> LivenessMonitor:
    monitor = LivenessMonitor(POLICY)
    monitor.seen(STATION, now=START)
    return monitor


def test_station_seen_just_now_is_due_nothing(monitor: LivenessMonitor) -> None:
    due = monitor.due(now=START + 1)

    assert (due.ping, due.dead, due.silent) == ([], [], [])


def test_idle_station_is_pinged_after_the_idle_interval(
    monitor: LivenessMonitor,
) -> None:
    assert monitor.due(now=START + 179.9).ping == []
    assert monitor.due(now=START + 180).ping == [STATION]


def test_charging_station_is_pinged_after_the_charging_interval(
    monitor: LivenessMonitor,
) -> None:
    monitor.set_charging(STATION, True)

    assert monitor.due(now=START + 4.9).ping == []
    assert monitor.due(now=START + 5).ping == [STATION]


def test_station_is_not_pinged_again_while_a_ping_is_outstanding(
    monitor: LivenessMonitor,
) -> None:
    monitor.set_charging(STATION, True)
    monitor.pinged(STATION, now=START + 5)

    assert monitor.due(now=START + 9).ping == []


def test_ping_unanswered_past_the_timeout_means_a_dead_link(
    monitor: LivenessMonitor,
) -> None:
    monitor.set_charging(STATION, True)
    monitor.pinged(STATION, now=START + 5)

    assert monitor.due(now=START + 14.9).dead == []
    assert monitor.due(now=START + 15).dead == [STATION]


def test_any_frame_answers_the_outstanding_ping(monitor: LivenessMonitor) -> None:
    monitor.set_charging(STATION, True)
    monitor.pinged(STATION, now=START + 5)
    monitor.seen(STATION, now=START + 6)

    due = monitor.due(now=START + 16)

    assert due.dead == []
    assert due.ping == [STATION]


def test_idle_station_silent_past_its_window_is_silent(
    monitor: LivenessMonitor,
) -> None:
    assert monitor.due(now=START + 269.9).silent == []
    assert monitor.due(now=START + 270).silent == [STATION]


def test_charging_station_silent_past_its_window_is_pinged_not_silent(
    monitor: LivenessMonitor,
) -> None:
    monitor.set_charging(STATION, True)

    due = monitor.due(now=START + 1_000)

    assert due.silent == []
    assert due.ping == [STATION]


def test_station_that_stops_charging_is_held_to_the_idle_rules(
    monitor: LivenessMonitor,
) -> None:
    monitor.set_charging(STATION, True)
    monitor.set_charging(STATION, False)

    assert monitor.due(now=START + 6).ping == []
    assert monitor.due(now=START + 270).silent == [STATION]


def test_forgotten_station_is_never_due(monitor: LivenessMonitor) -> None:
    monitor.forget(STATION)

    due = monitor.due(now=START + 10_000)

    assert (due.ping, due.dead, due.silent) == ([], [], [])
    assert STATION not in monitor
    assert len(monitor) == 0


def test_charging_flag_of_an_unknown_station_does_not_track_it() -> None:
    monitor = LivenessMonitor(POLICY)

    monitor.set_charging(STATION, True)
    monitor.pinged(STATION, now=START)

    assert STATION not in monitor


def test_zero_ping_interval_turns_pings_off() -> None:
    monitor = LivenessMonitor(
        LivenessPolicy(
            heartbeat_window=270.0,
            ping_interval_idle=0.0,
            ping_interval_charging=0.0,
            ping_timeout=10.0,
        )
    )
    monitor.seen(STATION, now=START)
    monitor.set_charging(STATION, True)

    assert monitor.due(now=START + 100).ping == []


def test_each_station_is_judged_on_its_own(monitor: LivenessMonitor) -> None:
    monitor.seen("CP-2", now=START + 90)
    monitor.seen("CP-3", now=START + 100)
    monitor.set_charging("CP-3", True)

    due = monitor.due(now=START + 280)

    assert due.silent == [STATION]
    assert due.ping == ["CP-2", "CP-3"]
