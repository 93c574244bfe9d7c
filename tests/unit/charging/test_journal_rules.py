"""The pure rules behind the journal: plausible times, whole sequences, complete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.charging.journal import has_sequence_gap, is_plausible_time
from csms.charging.models import ChargeDetailRecord

RECEIVED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment",
    [RECEIVED, RECEIVED - timedelta(days=300), RECEIVED + timedelta(hours=23)],
)
def test_a_time_near_its_arrival_is_plausible(moment: datetime) -> None:
    assert is_plausible_time(moment, received_at=RECEIVED)


@pytest.mark.parametrize(
    "moment",
    [datetime(1970, 1, 1, tzinfo=UTC), RECEIVED + timedelta(days=1, seconds=1)],
)
def test_an_unset_or_far_future_time_is_implausible(moment: datetime) -> None:
    assert not is_plausible_time(moment, received_at=RECEIVED)


@pytest.mark.parametrize(
    ("numbers_seen", "highest", "gap"),
    [(1, 0, False), (3, 2, False), (2, 2, True), (0, None, False)],
)
def test_a_sequence_has_a_gap_when_a_number_below_the_highest_is_missing(
    numbers_seen: int, highest: int | None, gap: bool
) -> None:
    assert has_sequence_gap(numbers_seen=numbers_seen, highest=highest) is gap


@pytest.mark.parametrize(
    ("state", "flags", "complete"),
    [
        ("Finished", [], True),
        ("Finished", ["implausible_time"], True),
        ("Started", [], False),
        ("Finished", ["sequence_gap"], False),
        ("Finished", ["closed_without_stop", "incomplete"], False),
        ("Finished", ["unknown_transaction"], False),
        ("Finished", ["sequence_gap", "confirmed_complete"], True),
    ],
)
def test_a_record_is_complete_when_finished_with_nothing_missing(
    state: str, flags: list[str], complete: bool
) -> None:
    record = ChargeDetailRecord(state=state, flags=flags)

    assert record.complete is complete
