"""Which stations to ping, which links are dead, which stations went silent.

No I/O and no clock of its own: the gateway tells it when a station was seen
and asks, on each tick, what is due at the monotonic time it passes in.

- Any frame from a station (a pong included) is a sign of life.
- Idle stations are pinged sparingly (the fleet is large), charging ones
  closely, so that a link dropped during a charge is noticed in seconds.
- A ping left unanswered past ``ping_timeout`` means the link is dead.
- A station that is not charging and silent past its heartbeat window is
  silent: it is marked Unavailable. A charging one is not — its open charge
  must be reconciled when it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _Link:
    last_seen: float
    charging: bool = False
    ping_sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    heartbeat_window: float
    ping_interval_idle: float
    ping_interval_charging: float
    ping_timeout: float


@dataclass(slots=True)
class DueActions:
    ping: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)


class LivenessMonitor:
    def __init__(self, policy: LivenessPolicy) -> None:
        self._policy = policy
        self._links: dict[str, _Link] = {}

    def __len__(self) -> int:
        return len(self._links)

    def __contains__(self, station_id: object) -> bool:
        return station_id in self._links

    def seen(self, station_id: str, *, now: float) -> None:
        link = self._links.get(station_id)
        if link is None:
            self._links[station_id] = _Link(last_seen=now)
        else:
            link.last_seen = now
            link.ping_sent_at = None

    def set_charging(self, station_id: str, charging: bool) -> None:
        link = self._links.get(station_id)
        if link is not None:
            link.charging = charging

    def forget(self, station_id: str) -> None:
        self._links.pop(station_id, None)

    def pinged(self, station_id: str, *, now: float) -> None:
        link = self._links.get(station_id)
        if link is not None:
            link.ping_sent_at = now

    def due(self, *, now: float) -> DueActions:
        # TODO: a full scan per tick is ~10 ms for the world's fleet in one
        # process; a timer wheel would make a tick proportional to what is due.
        policy = self._policy
        actions = DueActions()
        for station_id, link in self._links.items():
            silence = now - link.last_seen
            pinged = link.ping_sent_at
            if pinged is not None and now - pinged >= policy.ping_timeout:
                actions.dead.append(station_id)
                continue
            if not link.charging and silence >= policy.heartbeat_window:
                actions.silent.append(station_id)
                continue
            interval = (
                policy.ping_interval_charging
                if link.charging
                else policy.ping_interval_idle
            )
            if interval > 0 and link.ping_sent_at is None and silence >= interval:
                actions.ping.append(station_id)
        return actions
