"""Per-station message rate and flapping detection, on a time the test chooses."""

from __future__ import annotations

from csms.ocpp.limits import FlapDetector, MessageRateLimiter, RateVerdict


def test_a_burst_within_the_bucket_is_accepted() -> None:
    limiter = MessageRateLimiter(rate=10, burst=5, patience=3, now=0.0)

    verdicts = [limiter.admit(now=0.0).verdict for _ in range(5)]

    assert verdicts == [RateVerdict.ACCEPT] * 5


def test_past_the_burst_a_station_is_slowed_by_the_time_a_token_takes() -> None:
    limiter = MessageRateLimiter(rate=10, burst=2, patience=3, now=0.0)
    limiter.admit(now=0.0)
    limiter.admit(now=0.0)

    decision = limiter.admit(now=0.0)

    assert decision.verdict is RateVerdict.SLOW_DOWN
    assert abs(decision.wait - 0.1) < 1e-9


def test_a_station_that_keeps_flooding_is_disconnected() -> None:
    limiter = MessageRateLimiter(rate=10, burst=1, patience=3, now=0.0)
    verdicts = [limiter.admit(now=0.0).verdict for _ in range(5)]

    assert verdicts == [
        RateVerdict.ACCEPT,
        RateVerdict.SLOW_DOWN,
        RateVerdict.SLOW_DOWN,
        RateVerdict.SLOW_DOWN,
        RateVerdict.DISCONNECT,
    ]


def test_the_bucket_refills_at_the_rate() -> None:
    limiter = MessageRateLimiter(rate=10, burst=1, patience=3, now=0.0)
    limiter.admit(now=0.0)

    assert limiter.admit(now=0.1).verdict is RateVerdict.ACCEPT


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    limiter = MessageRateLimiter(rate=0, burst=1, patience=1, now=0.0)

    assert all(limiter.admit(now=0.0).verdict is RateVerdict.ACCEPT for _ in range(100))


def test_flapping_is_reported_once_per_window() -> None:
    flaps = FlapDetector(threshold=3, window=60)

    reports = [flaps.connected("CP-1", now=float(second)) for second in range(6)]

    assert reports == [False, False, True, False, False, False]


def test_connections_spread_beyond_the_window_are_not_flapping() -> None:
    flaps = FlapDetector(threshold=3, window=60)

    reports = [flaps.connected("CP-1", now=second * 40.0) for second in range(5)]

    assert not any(reports)


def test_flap_tracking_is_bounded() -> None:
    flaps = FlapDetector(threshold=3, window=60, max_tracked=2)
    for station in ("A", "B", "C"):
        flaps.connected(station, now=0.0)

    assert len(flaps) == 2
