import pytest

from csms.ocpp.throttle import AuthThrottle

_STATION = "CS-0001"
_STATION_ADDRESS = "198.51.100.7"
_ATTACKER_ADDRESS = "203.0.113.66"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock: FakeClock) -> AuthThrottle:
    return AuthThrottle(clock=clock, base_delay=0.25, max_delay=30.0, window=300.0)


def _fail(throttle: AuthThrottle, times: int, *, station_id: str, address: str) -> None:
    for _ in range(times):
        throttle.record_failure(station_id=station_id, address=address)


def test_no_failures_means_no_delay(throttle: AuthThrottle) -> None:
    assert throttle.delay_for(station_id=_STATION, address=_STATION_ADDRESS) == 0.0


def test_delay_doubles_with_each_failure(throttle: AuthThrottle) -> None:
    delays = []
    for _ in range(4):
        throttle.record_failure(station_id=_STATION, address=_ATTACKER_ADDRESS)
        delays.append(
            throttle.delay_for(station_id=_STATION, address=_ATTACKER_ADDRESS)
        )
    assert delays == [0.25, 0.5, 1.0, 2.0]


def test_delay_is_capped_at_max_delay(throttle: AuthThrottle) -> None:
    _fail(throttle, 20, station_id=_STATION, address=_ATTACKER_ADDRESS)
    assert throttle.delay_for(station_id=_STATION, address=_ATTACKER_ADDRESS) == 30.0


def test_very_many_failures_stay_at_max_delay(throttle: AuthThrottle) -> None:
    _fail(throttle, 2_000, station_id=_STATION, address=_ATTACKER_ADDRESS)
    assert throttle.delay_for(station_id=_STATION, address=_ATTACKER_ADDRESS) == 30.0


def test_address_delay_applies_to_another_station_id_from_that_address(
    throttle: AuthThrottle,
) -> None:
    for number in range(5):
        throttle.record_failure(station_id=f"CS-{number}", address=_ATTACKER_ADDRESS)
    assert throttle.delay_for(
        station_id="CS-never-tried", address=_ATTACKER_ADDRESS
    ) == (0.25 * 2**4)


def test_failures_from_attacker_address_do_not_delay_real_station_address(
    throttle: AuthThrottle,
) -> None:
    _fail(throttle, 10, station_id=_STATION, address=_ATTACKER_ADDRESS)
    assert throttle.delay_for(station_id=_STATION, address=_STATION_ADDRESS) == 0.0


def test_failures_counts_every_station_id_from_the_address(
    throttle: AuthThrottle,
) -> None:
    _fail(throttle, 2, station_id="CS-A", address=_ATTACKER_ADDRESS)
    _fail(throttle, 3, station_id="CS-B", address=_ATTACKER_ADDRESS)
    assert throttle.failures(address=_ATTACKER_ADDRESS) == 5
    assert throttle.failures(address=_STATION_ADDRESS) == 0


def test_success_clears_the_pair(throttle: AuthThrottle) -> None:
    _fail(throttle, 3, station_id=_STATION, address=_STATION_ADDRESS)
    throttle.record_success(station_id=_STATION, address=_STATION_ADDRESS)
    assert throttle.delay_for(station_id=_STATION, address=_STATION_ADDRESS) == 0.0
    assert throttle.failures(address=_STATION_ADDRESS) == 0


def test_success_keeps_failures_of_other_station_ids_from_the_address(
    throttle: AuthThrottle,
) -> None:
    _fail(throttle, 2, station_id=_STATION, address=_ATTACKER_ADDRESS)
    _fail(throttle, 3, station_id="CS-other", address=_ATTACKER_ADDRESS)
    throttle.record_success(station_id=_STATION, address=_ATTACKER_ADDRESS)
    assert throttle.failures(address=_ATTACKER_ADDRESS) == 3
    assert throttle.delay_for(station_id=_STATION, address=_ATTACKER_ADDRESS) == 1.0


def test_success_leaves_the_same_station_at_another_address_delayed(
    throttle: AuthThrottle,
) -> None:
    _fail(throttle, 3, station_id=_STATION, address=_ATTACKER_ADDRESS)
    throttle.record_success(station_id=_STATION, address=_STATION_ADDRESS)
    assert throttle.delay_for(station_id=_STATION, address=_ATTACKER_ADDRESS) == 1.0


def test_failures_are_forgotten_after_the_window(
    throttle: AuthThrottle, clock: FakeClock
) -> None:
    _fail(throttle, 3, station_id=_STATION, address=_ATTACKER_ADDRESS)
    clock.now += 300.0
    assert throttle.delay_for(station_id=_STATION, address=_ATTACKER_ADDRESS) == 0.0
    assert throttle.failures(address=_ATTACKER_ADDRESS) == 0


def test_failures_are_remembered_within_the_window(
    throttle: AuthThrottle, clock: FakeClock
) -> None:
    _fail(throttle, 3, station_id=_STATION, address=_ATTACKER_ADDRESS)
    clock.now += 299.0
    assert throttle.delay_for(station_id=_STATION, address=_ATTACKER_ADDRESS) == 1.0


def test_memory_is_bounded_by_max_tracked(clock: FakeClock) -> None:
    throttle = AuthThrottle(clock=clock, max_tracked=3)
    for number in range(10):
        clock.now += 1.0
        throttle.record_failure(station_id=_STATION, address=f"192.0.2.{number}")

    remembered = [
        number
        for number in range(10)
        if throttle.failures(address=f"192.0.2.{number}") > 0
    ]
    assert remembered == [7, 8, 9]


def test_oldest_pair_is_evicted_first(clock: FakeClock) -> None:
    throttle = AuthThrottle(clock=clock, max_tracked=2)
    throttle.record_failure(station_id="CS-A", address=_ATTACKER_ADDRESS)
    clock.now += 1.0
    throttle.record_failure(station_id="CS-B", address=_ATTACKER_ADDRESS)
    clock.now += 1.0
    throttle.record_failure(station_id="CS-A", address=_ATTACKER_ADDRESS)
    clock.now += 1.0
    throttle.record_failure(station_id="CS-C", address=_STATION_ADDRESS)

    # CS-B's pair was the least recently failed, so it went; CS-A's survived.
    throttle.record_success(station_id="CS-A", address=_ATTACKER_ADDRESS)
    assert throttle.failures(address=_ATTACKER_ADDRESS) == 1


@pytest.mark.parametrize(
    "settings",
    [
        {"base_delay": 0.0},
        {"base_delay": 2.0, "max_delay": 1.0},
        {"window": 0.0},
        {"max_tracked": 0},
    ],
)
def test_nonsense_settings_are_refused(
    clock: FakeClock, settings: dict[str, float]
) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        AuthThrottle(clock=clock, **settings)  # type: ignore[arg-type]
