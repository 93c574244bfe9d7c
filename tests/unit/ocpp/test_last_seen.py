"""The last-seen batch stays bounded: the least recently seen is dropped first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.ocpp.last_seen import LastSeenBatch

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_full_batch_drops_the_least_recently_seen_and_counts_it() -> None:
    batch = LastSeenBatch(limit=2)
    batch["A"] = T0
    batch["B"] = T0
    batch["A"] = T0 + timedelta(seconds=1)

    batch["C"] = T0 + timedelta(seconds=2)

    assert set(batch.take()) == {"A", "C"}
    assert batch.dropped == 1


def test_a_restored_batch_keeps_the_newer_times() -> None:
    batch = LastSeenBatch(limit=10)
    batch["A"] = T0
    taken = batch.take()
    batch["A"] = T0 + timedelta(seconds=5)

    batch.restore(taken)

    assert batch.take() == {"A": T0 + timedelta(seconds=5)}


def test_a_restored_batch_beyond_the_limit_loses_its_oldest_entries() -> None:
    batch = LastSeenBatch(limit=2)
    batch["A"] = T0
    batch["B"] = T0
    taken = batch.take()
    batch["C"] = T0 + timedelta(seconds=1)

    batch.restore(taken)

    assert set(batch.take()) == {"B", "C"}
    assert batch.dropped == 1
