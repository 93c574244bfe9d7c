"""How a timer's failure is logged: a database that is busy or down is a
warning (the timer tries again next tick), anything else an error."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from structlog.testing import capture_logs

from csms.app import log_timer_failure


def _level_of(error: Exception) -> str:
    with capture_logs() as logs:
        try:
            raise error
        except Exception as exc:
            log_timer_failure("charging.expire_starts.failed", exc)
    [entry] = logs
    assert entry["event"] == "charging.expire_starts.failed"
    return str(entry["log_level"])


def test_a_database_that_is_down_or_busy_is_a_warning() -> None:
    assert _level_of(ConnectionRefusedError(111, "refused")) == "warning"
    assert _level_of(TimeoutError()) == "warning"


def test_a_bug_of_ours_is_an_error() -> None:
    assert _level_of(KeyError("record_id")) == "error"
    assert _level_of(IntegrityError("INSERT", {}, Exception("dup"))) == "error"
