"""One queue whose messages are written together, many to a transaction.

Whoever finds no commit running starts one that takes everything queued, up
to ``max_batch`` messages, and hands them to ``commit``: one transaction for
the whole batch, whose outcome for each message comes back in order. Messages
arriving meanwhile wait for the next batch. Alone, a message costs what a
transaction of its own did; under load, many share the round trips and the
commit. Nothing is answered before its batch is committed: when ``commit``
raises, every message of the batch gets that error, and its caller handles it
as it would its own failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Message = TypeVar("Message")
Outcome = TypeVar("Outcome")


class GroupCommit(Generic[Message, Outcome]):
    def __init__(
        self,
        commit: Callable[[list[Message]], Awaitable[list[Outcome]]],
        *,
        max_batch: int,
        name: str,
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._name = name
        self._queue: list[tuple[Message, asyncio.Future[Outcome]]] = []
        self._committing: asyncio.Task[None] | None = None
        # How many messages went into how many commits: the batching at work.
        self.messages = 0
        self.commits = 0

    async def submit(self, message: Message) -> Outcome:
        """Queue ``message``; its outcome once its batch is committed.

        TODO: a message alone still goes through the queue and a task of its
        own (~5-10 % of a lone reading's CPU, bench_messages); committing it
        in the caller's task when no commit runs would spare that.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((message, future))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(
                self._drain(), name=f"{self._name}-group-commit"
            )
        # Shielded: a caller that gives up must not cancel the batch of others.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                outcomes = await self._commit([message for message, _ in batch])
            except asyncio.CancelledError:
                # Stopping: nobody may wait for ever on a batch never committed.
                for _, future in [*batch, *self._queue]:
                    future.cancel()
                self._queue.clear()
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.messages += len(batch)
            self.commits += 1
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
