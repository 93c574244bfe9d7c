"""Which database failures pass, which mean an outage, and who is told."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from csms.db.engine import create_engine
from csms.db.health import DatabaseHealth, is_connection_lost, is_transient


def _wrapped(cls: type[Exception], orig: Exception) -> Exception:
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        _wrapped(OperationalError, Exception("database is locked")),
        _wrapped(OperationalError, ConnectionResetError()),
    ],
)
def test_failures_of_the_database_itself_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(IntegrityError, Exception("duplicate key")),
        _wrapped(ProgrammingError, Exception("no such column")),
        KeyError("transactionId"),
    ],
)
def test_our_own_mistakes_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def test_a_lock_timeout_is_transient_but_no_outage() -> None:
    error = _wrapped(OperationalError, Exception("database is locked"))

    assert not is_connection_lost(error)


def test_a_timeout_is_transient_but_no_outage() -> None:
    # Builtin TimeoutError is an OSError; it still means slow, not gone.
    assert is_transient(TimeoutError())
    assert not is_connection_lost(TimeoutError())


def test_a_refused_connection_is_an_outage() -> None:
    assert is_connection_lost(ConnectionRefusedError(111, "refused"))


async def test_listeners_are_told_once_per_outage() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    health = DatabaseHealth(engine, interval=timedelta(seconds=1))
    told: list[str] = []
    health.on_unavailable(lambda: told.append("down"))

    health.report_failure(ConnectionRefusedError(111, "refused"))
    health.report_failure(ConnectionRefusedError(111, "refused"))

    assert not health.available
    assert told == ["down"]
    await engine.dispose()


async def test_a_probe_that_gets_an_answer_makes_it_available_again() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    health = DatabaseHealth(engine, interval=timedelta(seconds=1))
    health.report_failure(ConnectionRefusedError(111, "refused"))

    answered = await health.probe()

    assert answered
    assert health.available
    await engine.dispose()
