"""The group-commit queue, without a database: batching, failures, stopping."""

from __future__ import annotations

import asyncio

import pytest

from csms.db.group_commit import GroupCommit


async def test_messages_queued_during_a_commit_share_the_next_one() -> None:
    batches: list[list[int]] = []

    async def commit(batch: list[int]) -> list[int]:
        batches.append(batch)
        await asyncio.sleep(0.01)
        return [number * 10 for number in batch]

    group = GroupCommit(commit, max_batch=3, name="test")
    outcomes = await asyncio.gather(*(group.submit(number) for number in range(5)))

    assert outcomes == [0, 10, 20, 30, 40]
    assert batches == [[0, 1, 2], [3, 4]]
    assert (group.messages, group.commits) == (5, 2)


async def test_a_failed_commit_fails_every_message_of_its_batch_only() -> None:
    async def commit(batch: list[int]) -> list[int]:
        if 1 in batch:
            raise RuntimeError("database gone")
        return batch

    group = GroupCommit(commit, max_batch=2, name="test")
    outcomes = await asyncio.gather(
        *(group.submit(number) for number in range(3)), return_exceptions=True
    )

    assert [type(outcome) for outcome in outcomes[:2]] == [RuntimeError] * 2
    assert outcomes[2] == 2
    assert (group.messages, group.commits) == (1, 1)


async def test_stopping_a_commit_cancels_whoever_waits_for_it() -> None:
    started = asyncio.Event()

    async def commit(batch: list[int]) -> list[int]:
        started.set()
        await asyncio.Event().wait()
        return batch

    group = GroupCommit(commit, max_batch=1, name="test")
    first = asyncio.create_task(group.submit(1))
    second = asyncio.create_task(group.submit(2))
    await started.wait()
    drain = next(
        task for task in asyncio.all_tasks() if task.get_name() == "test-group-commit"
    )

    drain.cancel()

    for waiter in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiter, 2)
