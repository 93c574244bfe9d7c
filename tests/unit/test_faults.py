"""The CSMS_CRASH_AT reader: parsed when set, ignored in production."""

import pytest

from csms.faults import CrashPoint, read_crash_point


def test_a_crash_point_is_read_from_the_environment() -> None:
    crash_at = {"CSMS_CRASH_AT": "after_commit:TransactionEvent"}

    assert read_crash_point(crash_at) == CrashPoint("after_commit", "TransactionEvent")


def test_no_crash_point_without_the_variable() -> None:
    assert read_crash_point({"CSMS_ENVIRONMENT": "development"}) is None


def test_a_crash_point_is_ignored_in_production() -> None:
    environ = {
        "CSMS_ENVIRONMENT": "production",
        "CSMS_CRASH_AT": "before_commit:StopTransaction",
    }

    assert read_crash_point(environ) is None


@pytest.mark.parametrize(
    "value", ["StopTransaction", "during_commit:StopTransaction", "before_commit:"]
)
def test_a_malformed_crash_point_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="CSMS_CRASH_AT"):
        read_crash_point({"CSMS_CRASH_AT": value})
