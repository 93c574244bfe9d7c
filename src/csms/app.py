"""Wiring: the roles of one process on one database.

:class:`Csms` is what ``csms serve`` runs and what the tests start on ephemeral
ports. It owns the engine, the services, and what its roles need:

- ``gateway``: the OCPP listeners, the stations' sockets, their liveness;
- ``api``: the HTTP API and the pages;
- ``worker``: the timers that act on stored state (overdue starts, abandoned
  charges, lapsed gateways).

``all`` (the default) is the three in one process, reaching stations through
its own gateway directly. Split over several processes, the roles meet on the
bus (:mod:`csms.cluster`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine, Iterable, Iterator
from typing import Any

import structlog
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.api.app import create_api
from csms.api.dependencies import ApiServices
from csms.bus import Bus, connect_bus
from csms.charging.operator_actions import OperatorCharging
from csms.charging.reconcile import Reconciler
from csms.charging.samples import MeterSampleWriter
from csms.charging.service import ChargingService
from csms.clock import Clock, SystemClock
from csms.cluster import (
    EventRelay,
    GatewayNode,
    RemoteCommands,
    Role,
    Subjects,
    counting_failures,
    is_in_process,
)
from csms.customers.service import CustomerService
from csms.db.engine import create_engine, create_sessionmaker
from csms.db.health import DatabaseHealth, is_transient
from csms.db.partitions import PartitionMaintainer, retention_from_settings
from csms.events import EventFeed
from csms.observability.health import Readiness
from csms.observability.metrics import Metrics
from csms.ocpp.context import Services
from csms.ocpp.framing import OcppVersion
from csms.ocpp.gateway import Gateway
from csms.operators.service import OperatorService
from csms.settings import Settings
from csms.stations.bulk import StationImporter
from csms.stations.commands import StationControl
from csms.stations.nearby import NearbyService
from csms.stations.service import StationService

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the CSMS owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _GatewayCommands:
    """Reaches stations through this process's own gateway (built after
    charging, which needs it)."""

    gateway: Gateway | None = None
    metrics: Metrics | None = None

    def _require(self) -> Gateway:
        assert self.gateway is not None, "the gateway is not wired yet"
        return self.gateway

    def version_of(self, station_id: str) -> OcppVersion | None:
        return self._require().version_of(station_id)

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        gateway = self._require()
        return await counting_failures(
            self.metrics,
            action,
            gateway.call(station_id, action, payload, timeout=timeout),
        )


ALL_ROLES = frozenset({Role.GATEWAY, Role.API, Role.WORKER})


def expand_roles(roles: Iterable[Role]) -> frozenset[Role]:
    chosen = frozenset(roles)
    if not chosen or Role.ALL in chosen:
        return ALL_ROLES
    return chosen


class Csms:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        engine: AsyncEngine | None = None,
        roles: Iterable[Role] = (Role.ALL,),
    ) -> None:
        self.settings = settings
        self.roles = expand_roles(roles)
        # One process with every role reaches its stations directly; roles
        # split over processes meet on a bus.
        self.bus: Bus | None = None
        if self.roles != ALL_ROLES or not is_in_process(settings.bus_url):
            self.bus = connect_bus(settings.bus_url)
        subjects = Subjects(settings.cluster_name)
        self.clock = clock or SystemClock()
        self.engine = engine or create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        sessionmaker = create_sessionmaker(self.engine)
        # Two connections of their own for the gateway's lease and the health
        # probe: a pool saturated by a storm must not make a live gateway look
        # dead or its database look gone.
        self._control_engine = (
            create_engine(settings.database_url, pool_size=1, max_overflow=1)
            if engine is None and self.engine.dialect.name == "postgresql"
            else self.engine
        )
        # What changed, after commit: live pages and metrics subscribe.
        self.events = EventFeed()
        # TODO: per process, served by the api role only: with roles split the
        # gateways' counters (OCPP calls, sockets) are not exported anywhere.
        self.metrics = Metrics()
        self.metrics.watch(self.events)
        self.stations = StationService(
            sessionmaker,
            clock=self.clock,
            events=self.events,
            leases=create_sessionmaker(self._control_engine),
        )
        token = settings.operator_bootstrap_token
        self.operators = OperatorService(
            sessionmaker,
            clock=self.clock,
            bootstrap_token=token.get_secret_value() if token else None,
        )
        self.customers = CustomerService(
            sessionmaker, clock=self.clock, settings=settings
        )
        local = _GatewayCommands()
        local.metrics = self.metrics
        self.remote: RemoteCommands | None = None
        commands: _GatewayCommands | RemoteCommands = local
        if Role.GATEWAY not in self.roles:
            assert self.bus is not None
            self.remote = commands = RemoteCommands(
                self.bus,
                sessionmaker,
                subjects=subjects,
                margin=settings.bus_request_margin.total_seconds(),
                metrics=self.metrics,
            )
        # Chart samples come from the meter values the gateway takes in.
        self.samples = MeterSampleWriter(
            sessionmaker,
            interval=settings.meter_sample_interval,
            pending_limit=settings.meter_sample_buffer_limit,
        )
        self.partitions = PartitionMaintainer(
            self.engine,
            months_ahead=settings.partition_months_ahead,
            retention=retention_from_settings(
                record_retention=settings.record_retention,
                journal_retention=settings.journal_retention,
                meter_sample_retention=settings.meter_sample_retention,
            ),
        )
        self.charging = ChargingService(
            sessionmaker,
            clock=self.clock,
            customers=self.customers,
            stations=self.stations,
            commands=commands,
            start_timeout=settings.remote_start_timeout,
            call_timeout=settings.call_timeout,
            events=self.events,
            samples=self.samples,
        )
        self.reconciler = Reconciler(
            sessionmaker,
            clock=self.clock,
            charging=self.charging,
            commands=commands,
            resync_delay=settings.resync_delay,
            resync_grace=settings.resync_grace,
            offline_grace=settings.offline_charge_grace,
            call_timeout=settings.call_timeout,
        )
        # Whether the database answers: the gateway refuses stations while not.
        self.database = DatabaseHealth(
            self._control_engine, interval=settings.database_probe_interval
        )
        self.gateway = Gateway(
            settings=settings,
            services=Services(
                stations=self.stations,
                charging=self.charging,
                clock=self.clock,
                heartbeat_interval=int(settings.heartbeat_interval.total_seconds()),
            ),
            metrics=self.metrics,
            on_connected=self.reconciler.on_station_connected,
            on_link=self._announce_link,
            database=self.database,
        )
        local.gateway = self.gateway
        self.node: GatewayNode | None = None
        self.relay: EventRelay | None = None
        if self.bus is not None:
            if Role.GATEWAY in self.roles:
                self.node = GatewayNode(self.gateway, self.bus, subjects=subjects)
            self.relay = EventRelay(
                self.events,
                self.bus,
                subjects=subjects,
                receive=Role.API in self.roles,
            )
        self._gateway_started = False
        self.api = create_api(
            ApiServices(
                stations=self.stations,
                operators=self.operators,
                customers=self.customers,
                charging=self.charging,
                nearby=NearbyService(
                    sessionmaker,
                    max_radius_km=settings.nearby_max_radius_km,
                    max_limit=settings.nearby_max_limit,
                ),
                importer=StationImporter(sessionmaker, clock=self.clock),
                events=self.events,
                metrics=self.metrics,
                readiness=Readiness(
                    sessionmaker,
                    gateway_started=lambda: (
                        self._gateway_started or Role.GATEWAY not in self.roles
                    ),
                    bus_connected=(
                        None if self.bus is None else lambda: self._bus_connected()
                    ),
                ),
                connected_versions=self._connected_versions,
                station_control=StationControl(
                    self.stations, commands, call_timeout=settings.call_timeout
                ),
                operator_charging=OperatorCharging(
                    sessionmaker, commands=commands, call_timeout=settings.call_timeout
                ),
                sessionmaker=sessionmaker,
            )
        )
        self._http: _EmbeddedServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.start()
        if self.relay is not None:
            await self.relay.start()
        if self.remote is not None:
            await self.remote.start()
        if Role.GATEWAY in self.roles:
            await self._start_gateway()
        if Role.WORKER in self.roles:
            self._start_timer(self._expire_starts(), "expire-starts")
            self._start_timer(self._close_abandoned_charges(), "close-abandoned")
            self._start_timer(self._maintain_partitions(), "partitions")
            if self.bus is not None:
                self._start_timer(self._release_lapsed_gateways(), "release-gateways")
        if Role.API in self.roles:
            await self._start_http()
        logger.info(
            "csms.started",
            roles=sorted(role.value for role in self.roles),
            http_port=self.http_port if Role.API in self.roles else None,
            ocpp_port=self.ocpp_port if Role.GATEWAY in self.roles else None,
            gateway_id=self.gateway.gateway_id,
        )

    async def _start_gateway(self) -> None:
        # No station is connected before the gateway listens, whatever the rows
        # say from before a restart: never show one Available from stale state.
        # One gateway among several releases only the stations it held.
        owner = None if self.roles == ALL_ROLES else self.gateway.gateway_id
        offline = await self.stations.mark_all_offline(owner=owner)
        if offline:
            logger.info("csms.stations.marked_offline", stations=offline)
        if self.node is not None:
            await self.node.start()
            await self.stations.renew_gateway_lease(
                self.gateway.gateway_id, started=True
            )
            self._start_timer(self._renew_lease(), "gateway-lease")
        await self.gateway.start()
        self._gateway_started = True
        self.database.start()
        self._start_timer(self._flush_samples(), "meter-samples")

    async def _start_http(self) -> None:
        config = uvicorn.Config(
            self.api,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            # Open event streams end when the feed closes; this is the backstop.
            timeout_graceful_shutdown=5,
        )
        self._http = _EmbeddedServer(config)
        self._http_task = asyncio.create_task(self._http.serve(), name="http")
        while not self._http.started:
            if self._http_task.done():
                await self._http_task
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    def _start_timer(self, work: Coroutine[Any, Any, None], name: str) -> None:
        timer = asyncio.create_task(work, name=name)
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    def _bus_connected(self) -> bool:
        return self.bus is not None and self.bus.connected

    def _announce_link(
        self, station_id: str, version: OcppVersion | None, epoch: int
    ) -> None:
        if self.node is not None:
            self.node.announce(station_id, version, epoch)

    @property
    def http_port(self) -> int:
        assert self._http is not None
        assert self._http.servers
        return int(self._http.servers[0].sockets[0].getsockname()[1])

    @property
    def ocpp_port(self) -> int:
        return self.gateway.port

    def _connected_versions(self) -> list[str]:
        if self.remote is not None:
            owned = self.remote.owners()
            return [owner.version.value for owner in owned]
        versions = (
            self.gateway.version_of(station_id)
            for station_id in self.gateway.connected_station_ids()
        )
        return [version.value for version in versions if version is not None]

    async def _expire_starts(self) -> None:
        interval = self.settings.liveness_check_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.charging.fail_overdue_starts()
            except Exception as exc:
                log_timer_failure("charging.expire_starts.failed", exc)

    async def _close_abandoned_charges(self) -> None:
        interval = self.settings.liveness_check_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconciler.close_abandoned_charges()
            except Exception as exc:
                log_timer_failure("charging.close_abandoned.failed", exc)

    async def _maintain_partitions(self) -> None:
        # At once on start: a fresh database gets its months ahead right away.
        interval = self.settings.partition_maintenance_interval.total_seconds()
        while True:
            try:
                await self.partitions.run_once(self.clock.now())
            except Exception as exc:
                log_timer_failure("db.partitions.failed", exc)
            await asyncio.sleep(interval)

    async def _flush_samples(self) -> None:
        interval = self.settings.meter_sample_flush_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.samples.flush()
            except Exception as exc:
                log_timer_failure("charging.samples.flush_loop_failed", exc)

    async def _release_lapsed_gateways(self) -> None:
        interval = self.settings.gateway_lease_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.stations.release_lapsed_gateways(
                    lapse=self.settings.gateway_lease_lapse
                )
            except Exception as exc:
                log_timer_failure("stations.release_lapsed.failed", exc)

    # TODO: on an event loop saturated by a storm this timer runs late, and
    # the worker may take the live gateway's lease for lapsed.
    async def _renew_lease(self) -> None:
        interval = self.settings.gateway_lease_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.stations.renew_gateway_lease(self.gateway.gateway_id)
            except Exception as exc:
                logger.warning("stations.lease.renew_failed", error=repr(exc))

    async def stop(self) -> None:
        """Stop accepting, close station sockets properly, release the database."""
        for timer in list(self._timers):
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        await self.database.stop()
        # Live pages' streams end first: the HTTP server waits for open responses.
        self.events.close()
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
        if self._gateway_started:
            self._gateway_started = False
            await self.gateway.stop()
            # The last charges' samples, taken in up to the gateway's close.
            await _quietly(self.samples.flush())
            if self.node is not None:
                await self.node.stop()
                # Stopped cleanly: nothing for the worker to release.
                await _quietly(self.stations.end_gateway_lease(self.gateway.gateway_id))
        if self.remote is not None:
            await self.remote.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.bus is not None:
            await self.bus.close()
        await self.engine.dispose()
        if self._control_engine is not self.engine:
            await self._control_engine.dispose()
        logger.info("csms.stopped")


def log_timer_failure(event: str, exc: Exception) -> None:
    # A busy or unreachable database passes, and the timer tries again next
    # tick: a warning. Anything else is a bug of ours.
    if is_transient(exc):
        logger.warning(event, error=repr(exc))
    else:
        logger.exception(event)


async def _quietly(work: Awaitable[object]) -> None:
    try:
        await work
    except Exception as exc:
        logger.warning("csms.stop.step_failed", error=repr(exc))
