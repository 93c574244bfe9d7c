"""Prometheus metrics of one CSMS process, in their own registry.

Counters and the latency histogram are fed as things happen: the gateway
observes each OCPP call it handles, the station commands count calls to
stations that failed, the HTTP edge and the event feed count authentication
failures, the event feed counts Charge Detail Record writes. Gauges that
describe the whole fleet (stations by state, open charges, connected stations)
are read fresh at scrape time by :func:`refresh_gauges`, so they are right
after a restart and never drift.

Every :class:`Metrics` has its own registry: two CSMS in one process (the
tests) never add to each other's numbers.

See docs/observability.md for the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.charging.models import ChargeDetailRecord
from csms.charging.state import ACTIVE_STATES
from csms.events import (
    CHARGE_CHANGED,
    CHARGES_EXPIRED,
    STATION_EVENT_RECORDED,
    Event,
    EventFeed,
)
from csms.stations.models import Station
from csms.stations.state import StationState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OCPP_VERSIONS = ("ocpp1.6", "ocpp2.0.1")
# OCPP handlers commit before answering: most take milliseconds, a slow
# database shows in the upper buckets long before stations time out (30 s+).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# The security events the gateway stores that are failed authentications.
_AUTH_EVENT_KINDS = frozenset(
    {"auth_failed", "certificate_mismatch", "profile_downgrade"}
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.connected_stations = Gauge(
            "csms_connected_stations",
            "Stations with a live OCPP connection to this process, by OCPP version.",
            ["ocpp_version"],
            registry=registry,
        )
        self.stations = Gauge(
            "csms_stations",
            "Registered stations by state (Available, Unavailable, Charging).",
            ["state"],
            registry=registry,
        )
        self.open_charges = Gauge(
            "csms_open_charges",
            "Charge Detail Records Pending or Started.",
            registry=registry,
        )
        self.ocpp_calls = Counter(
            "csms_ocpp_calls",
            "OCPP calls received from stations, by action and outcome "
            "(result, or the CALLERROR code answered).",
            ["action", "outcome"],
            registry=registry,
        )
        self.ocpp_call_seconds = Histogram(
            "csms_ocpp_call_duration_seconds",
            "Time from a station's CALL to our answer, by action.",
            ["action"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.record_writes = Counter(
            "csms_charge_record_writes",
            "Committed writes of Charge Detail Records, by the record's new state.",
            ["state"],
            registry=registry,
        )
        self.station_call_failures = Counter(
            "csms_station_call_failures",
            "Calls from the CSMS to a station that failed, by action and reason "
            "(timeout, call_error, not_connected).",
            ["action", "reason"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "csms_auth_failures",
            "Refused authentications, by edge (ocpp, api) and reason.",
            ["edge", "reason"],
            registry=registry,
        )
        for version in OCPP_VERSIONS:
            self.connected_stations.labels(version).set(0)
        for state in StationState:
            self.stations.labels(state.value).set(0)

    # -- fed as things happen ------------------------------------------------------

    def observe_ocpp_call(self, action: str, outcome: str, seconds: float) -> None:
        self.ocpp_calls.labels(action, outcome).inc()
        self.ocpp_call_seconds.labels(action).observe(seconds)

    def count_station_call_failure(self, action: str, reason: str) -> None:
        self.station_call_failures.labels(action, reason).inc()

    def count_auth_failure(self, edge: str, reason: str) -> None:
        self.auth_failures.labels(edge, reason).inc()

    def watch(self, feed: EventFeed) -> None:
        """Count what the services publish: record writes, station auth failures."""
        feed.add_listener(self._on_event)
        self.registry.register(_FeedCollector(feed))

    def _on_event(self, event: Event) -> None:
        if event.kind == CHARGE_CHANGED:
            self.record_writes.labels(str(event.data.get("state"))).inc()
        elif event.kind == CHARGES_EXPIRED:
            self.record_writes.labels("Failed").inc(int(event.data["records"]))
        elif (
            event.kind == STATION_EVENT_RECORDED
            and event.data.get("kind") in _AUTH_EVENT_KINDS
        ):
            reason = event.data.get("reason") or event.data["kind"]
            self.count_auth_failure("ocpp", str(reason))

    # -- read at scrape time ---------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def refresh_gauges(
    metrics: Metrics,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    connected_versions: Callable[[], Iterable[str]],
) -> None:
    """Read the fleet-wide gauges: two indexed aggregate queries and the registry."""
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Station.state, func.count()).group_by(Station.state)
        )
        by_state = {row[0]: row[1] for row in rows}
        open_charges = await session.scalar(
            select(func.count())
            .select_from(ChargeDetailRecord)
            .where(ChargeDetailRecord.state.in_(ACTIVE_STATES))
        )
    for state in StationState:
        metrics.stations.labels(state.value).set(by_state.get(state.value, 0))
    metrics.open_charges.set(open_charges or 0)

    versions = list(connected_versions())
    for version in {*OCPP_VERSIONS, *versions}:
        metrics.connected_stations.labels(version).set(versions.count(version))


class _FeedCollector(Collector):
    """The event feed's own numbers, read when scraped."""

    def __init__(self, feed: EventFeed) -> None:
        self._feed = feed

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "csms_event_feed_subscribers",
            "Live pages subscribed to the event feed.",
            value=self._feed.subscriber_count,
        )
        yield CounterMetricFamily(
            "csms_event_feed_dropped",
            "Events a slow subscriber lost (its oldest ones).",
            value=self._feed.dropped,
        )
