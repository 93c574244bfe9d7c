"""Wiring: one process running the gateway and the HTTP API on one database.

:class:`Csms` is what ``csms serve`` runs and what the tests start on ephemeral
ports. It owns the engine, the services, the gateway and the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import structlog
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.api.app import create_api
from csms.api.dependencies import ApiServices
from csms.charging.operator_actions import OperatorCharging
from csms.charging.reconcile import Reconciler
from csms.charging.service import ChargingService
from csms.clock import Clock, SystemClock
from csms.customers.service import CustomerService
from csms.db.engine import create_engine, create_sessionmaker
from csms.db.health import DatabaseHealth
from csms.events import EventFeed
from csms.observability.health import Readiness
from csms.observability.metrics import Metrics
from csms.ocpp.calls import CallFailed, CallTimeout, StationNotConnected
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
    """Reaches stations through this process's gateway (built after charging,
    which needs it): the in-process stand-in for a bus between roles."""

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
        try:
            return await gateway.call(station_id, action, payload, timeout=timeout)
        except (CallTimeout, CallFailed, StationNotConnected) as exc:
            if self.metrics is not None:
                self.metrics.count_station_call_failure(action, _failure_reason(exc))
            raise


def _failure_reason(exc: Exception) -> str:
    if isinstance(exc, CallTimeout):
        return "timeout"
    if isinstance(exc, CallFailed):
        return "call_error"
    return "not_connected"


# TODO: every role runs in this one process; splitting gateway, api and worker
# roles (with a bus carrying commands and events between them) is what lets the
# fleet grow past the ~19,900 sockets one process may hold here.
class Csms:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.engine = engine or create_engine(settings.database_url)
        sessionmaker = create_sessionmaker(self.engine)
        # What changed, after commit: live pages and metrics subscribe.
        self.events = EventFeed()
        self.metrics = Metrics()
        self.metrics.watch(self.events)
        self.stations = StationService(
            sessionmaker, clock=self.clock, events=self.events
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
        commands = _GatewayCommands()
        commands.metrics = self.metrics
        self.charging = ChargingService(
            sessionmaker,
            clock=self.clock,
            customers=self.customers,
            stations=self.stations,
            commands=commands,
            start_timeout=settings.remote_start_timeout,
            call_timeout=settings.call_timeout,
            events=self.events,
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
            self.engine, interval=settings.database_probe_interval
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
            database=self.database,
        )
        commands.gateway = self.gateway
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
                    sessionmaker, gateway_started=lambda: self._gateway_started
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
        # No station is connected before the gateway listens, whatever the rows
        # say from before a restart: never show one Available from stale state.
        offline = await self.stations.mark_all_offline()
        if offline:
            logger.info("csms.stations.marked_offline", stations=offline)
        await self.gateway.start()
        self._gateway_started = True
        self.database.start()
        for work, name in (
            (self._expire_starts(), "expire-starts"),
            (self._close_abandoned_charges(), "close-abandoned-charges"),
        ):
            timer = asyncio.create_task(work, name=name)
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
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
        logger.info("csms.started", http_port=self.http_port, ocpp_port=self.ocpp_port)

    @property
    def http_port(self) -> int:
        assert self._http is not None
        assert self._http.servers
        return int(self._http.servers[0].sockets[0].getsockname()[1])

    @property
    def ocpp_port(self) -> int:
        return self.gateway.port

    def _connected_versions(self) -> list[str]:
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
            except Exception:
                logger.exception("charging.expire_starts.failed")

    async def _close_abandoned_charges(self) -> None:
        interval = self.settings.liveness_check_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconciler.close_abandoned_charges()
            except Exception:
                logger.exception("charging.close_abandoned.failed")

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
        self._gateway_started = False
        await self.gateway.stop()
        await self.engine.dispose()
        logger.info("csms.stopped")
