"""The in-process event feed: fan-out, slow subscribers, listeners, closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from csms.events import Event, EventFeed


def _event(number: int) -> Event:
    return Event("test.happened", {"number": number})


async def _drain(events: AsyncIterator[Event | None], count: int) -> list[Event | None]:
    return [await anext(events) for _ in range(count)]


async def test_every_subscriber_gets_every_event() -> None:
    feed = EventFeed()

    async with feed.subscription() as first, feed.subscription() as second:
        feed.publish(_event(1))
        feed.publish(_event(2))

        assert await _drain(first, 2) == [_event(1), _event(2)]
        assert await _drain(second, 2) == [_event(1), _event(2)]


async def test_a_subscriber_that_cannot_keep_up_loses_its_oldest_events() -> None:
    feed = EventFeed(queue_size=3)

    async with feed.subscription() as events:
        for number in range(5):
            feed.publish(_event(number))

        assert await _drain(events, 3) == [_event(2), _event(3), _event(4)]
    assert feed.dropped == 2


async def test_a_slow_subscriber_does_not_slow_a_fast_one() -> None:
    feed = EventFeed(queue_size=2)

    async with feed.subscription() as slow, feed.subscription() as fast:
        received = []
        for number in range(4):
            feed.publish(_event(number))
            received += await _drain(fast, 1)

        assert received == [_event(number) for number in range(4)]
        assert await _drain(slow, 2) == [_event(2), _event(3)]


async def test_listeners_get_every_event_even_without_subscribers() -> None:
    feed = EventFeed(queue_size=1)
    heard: list[Event] = []
    feed.add_listener(heard.append)

    for number in range(3):
        feed.publish(_event(number))

    assert heard == [_event(0), _event(1), _event(2)]


async def test_a_failing_listener_does_not_stop_the_publisher() -> None:
    feed = EventFeed()
    heard: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("bug in a listener")

    feed.add_listener(broken)
    feed.add_listener(heard.append)
    feed.publish(_event(1))

    assert heard == [_event(1)]


async def test_closing_the_feed_ends_every_subscription() -> None:
    feed = EventFeed(queue_size=1)

    async with feed.subscription() as events:
        feed.publish(_event(1))
        feed.close()
        received = [event async for event in events]

    # The end marker displaced the unread event rather than waiting behind it.
    assert received == []
    assert feed.subscriber_count == 0


async def test_an_idle_subscription_yields_none_as_a_keepalive() -> None:
    feed = EventFeed()

    async with feed.subscription(idle=0.01) as events:
        assert await asyncio.wait_for(_drain(events, 1), 1) == [None]
        feed.publish(_event(1))
        assert await _drain(events, 1) == [_event(1)]


async def test_leaving_a_subscription_unsubscribes() -> None:
    feed = EventFeed()

    async with feed.subscription():
        assert feed.subscriber_count == 1

    assert feed.subscriber_count == 0
