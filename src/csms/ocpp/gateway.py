"""The OCPP-J WebSocket gateway: handshake, authentication, dispatch, liveness.

This is the I/O layer around the pure pieces (framing, validation, outgoing
calls, liveness, registry). It translates frames into calls on the domain
services and holds no truth of its own: everything a station is told has been
stored first.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from csms.db.health import DatabaseHealth, is_transient
from csms.errors import StationNotFound
from csms.logs import mask_tokens
from csms.observability.metrics import Metrics
from csms.ocpp import v16, v201
from csms.ocpp.calls import CallTimeout, OutgoingCalls, StationNotConnected
from csms.ocpp.context import (
    HandlerContext,
    Routes,
    Services,
    StationLink,
)
from csms.ocpp.framing import (
    Call,
    ErrorKind,
    FrameError,
    OcppVersion,
    encode_error,
    encode_result,
    error_code,
    parse_frame,
)
from csms.ocpp.last_seen import LastSeenBatch
from csms.ocpp.limits import FlapDetector, MessageRateLimiter, RateVerdict
from csms.ocpp.liveness import DueActions, LivenessMonitor, LivenessPolicy
from csms.ocpp.registry import ConnectionRegistry
from csms.ocpp.throttle import AuthThrottle
from csms.ocpp.validation import SchemaViolation, get_validator
from csms.security.tls import build_mtls_context, build_tls_context, common_name_of
from csms.settings import Settings
from csms.stations.credentials import parse_basic_auth, verify_password
from csms.stations.state import StationState
from csms.stations.writer import StaleOwner

logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("csms.ocpp")

PATH_PREFIX = "/ocpp/"
# When a station offers both, the newer protocol is chosen.
SUBPROTOCOLS = (OcppVersion.V201, OcppVersion.V16)
ROUTES: dict[OcppVersion, Routes] = {
    OcppVersion.V16: v16.ROUTES,
    OcppVersion.V201: v201.ROUTES,
}
# B02.FR.09 (2.0.1): until a boot is accepted, everything else is refused. 1.6
# (section 4.2.1) says the same in prose; its closest error code is SecurityError.
PRE_BOOT_ACTIONS = frozenset({"BootNotification"})
CLOSE_REPLACED = 4000
CLOSE_POLICY_VIOLATION = 1008
# Our database failed: the station should reconnect later and resend.
CLOSE_TRY_AGAIN = 1011

# What runs after a station's connection is established: (station id, version).
ConnectedHook = Callable[[str, OcppVersion], Awaitable[None]]
# Told when this gateway takes a station's link (version and the new owner
# epoch) and when it lets it go (version None): the cluster publishes both.
LinkHook = Callable[[str, OcppVersion | None, int], None]


@dataclass(eq=False, slots=True)
class StationConnection:
    socket: ServerConnection
    link: StationLink
    log: structlog.typing.FilteringBoundLogger
    rate: MessageRateLimiter
    calls: OutgoingCalls = field(default_factory=OutgoingCalls)


class Gateway:
    def __init__(
        self,
        *,
        settings: Settings,
        services: Services,
        throttle: AuthThrottle | None = None,
        metrics: Metrics | None = None,
        on_connected: ConnectedHook | None = None,
        on_link: LinkHook | None = None,
        database: DatabaseHealth | None = None,
    ) -> None:
        self._settings = settings
        self.gateway_id = settings.gateway_id
        self._on_link = on_link
        # Run as a tracked task for each new connection (charging's resync).
        self._on_connected = on_connected
        self._services = services
        self._stations = services.stations
        self._clock = services.clock
        self._throttle = throttle or AuthThrottle(clock=services.clock)
        self._metrics = metrics or Metrics()
        self._registry: ConnectionRegistry[StationConnection] = ConnectionRegistry()
        self._flaps = FlapDetector(
            threshold=settings.flap_threshold,
            window=settings.flap_window.total_seconds(),
        )
        self._monitor = LivenessMonitor(
            LivenessPolicy(
                heartbeat_window=settings.heartbeat_window.total_seconds(),
                ping_interval_idle=settings.ping_interval_idle.total_seconds(),
                ping_interval_charging=settings.ping_interval_charging.total_seconds(),
                ping_timeout=settings.ping_timeout.total_seconds(),
            )
        )
        # One lock per station id while anyone uses it, so that the link updates
        # of an old and a new connection of the same station never interleave.
        self._link_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._seen = LastSeenBatch()
        # While the database is down nothing a station says could be stored:
        # live links are closed and new ones refused until it answers again.
        self._database = database
        if database is not None:
            database.on_unavailable(self._close_all_for_outage)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: Server | None = None
        self._tls_server: Server | None = None
        self._mtls_server: Server | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        settings = self._settings

        # Build the TLS contexts first: a bad certificate path fails the start
        # before any port is open.
        tls_context = mtls_context = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            tls_context = build_tls_context(
                cert_file=settings.tls_cert_file, key_file=settings.tls_key_file
            )
            if settings.tls_ca_file is not None:
                mtls_context = build_mtls_context(
                    cert_file=settings.tls_cert_file,
                    key_file=settings.tls_key_file,
                    ca_file=settings.tls_ca_file,
                )

        # One listener per security profile, so that the port a station reached
        # tells which profile it used.
        self._server = await self._listen(settings.ocpp_port, profile=1)
        if tls_context is not None:
            self._tls_server = await self._listen(
                settings.ocpp_tls_port, profile=2, ssl_context=tls_context
            )
        if mtls_context is not None:
            self._mtls_server = await self._listen(
                settings.ocpp_mtls_port, profile=3, ssl_context=mtls_context
            )
        self._spawn(self._watch_liveness(), name="liveness")
        logger.info(
            "ocpp.gateway.started",
            host=settings.ocpp_host,
            port=self.port,
            tls_port=self.tls_port,
            mtls_port=self.mtls_port,
        )

    async def _listen(
        self, port: int, *, profile: int, ssl_context: ssl.SSLContext | None = None
    ) -> Server:
        settings = self._settings
        return await serve(
            functools.partial(self._serve_station, profile=profile),
            settings.ocpp_host,
            port,
            ssl=ssl_context,
            process_request=functools.partial(self._authenticate, profile=profile),
            subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            # Per-message compression costs up to 64 KiB a socket: off at fleet scale.
            compression=None,
            max_size=settings.max_frame_bytes,
            # Our own liveness monitor pings, idle and charging stations differently.
            ping_interval=None,
            ping_timeout=None,
            open_timeout=settings.handshake_timeout.total_seconds(),
            close_timeout=5,
            server_header=None,
            # Several gateway processes may share the port; the kernel spreads
            # new connections over them.
            reuse_port=settings.ocpp_reuse_port or None,
        )

    @property
    def port(self) -> int:
        """The port of the security profile 1 listener (plain WebSocket)."""
        assert self._server is not None, "the gateway is not started"
        return _port_of(self._server)

    @property
    def tls_port(self) -> int | None:
        """The port of the profile 2 listener (TLS); None when it does not run."""
        return None if self._tls_server is None else _port_of(self._tls_server)

    @property
    def mtls_port(self) -> int | None:
        """The port of the profile 3 listener (mutual TLS); None when not running."""
        return None if self._mtls_server is None else _port_of(self._mtls_server)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in (self._server, self._tls_server, self._mtls_server):
            if server is not None:
                server.close()
                await server.wait_closed()
        await self.flush_last_seen()
        logger.info("ocpp.gateway.stopped")

    # -- what others may ask -----------------------------------------------------

    def is_connected(self, station_id: str) -> bool:
        return self._registry.get(station_id) is not None

    def version_of(self, station_id: str) -> OcppVersion | None:
        """The OCPP version of the station's live connection; None when offline."""
        connection = self._registry.get(station_id)
        return None if connection is None else connection.link.version

    def taken_over(self, station_id: str, epoch: int) -> None:
        """Another gateway took the station with ``epoch``: a link of ours
        with an older epoch is stale, and closed."""
        connection = self._registry.get(station_id)
        if connection is None or (connection.link.epoch or 0) >= epoch:
            return
        connection.log.warning(
            "ocpp.connection.taken_over", epoch=connection.link.epoch, newer=epoch
        )
        self._spawn(
            connection.socket.close(CLOSE_REPLACED, "replaced by a newer connection"),
            name=f"close-taken-over-{station_id}",
        )

    def connected_station_ids(self) -> list[str]:
        return self._registry.station_ids()

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
        epoch: int | None = None,
    ) -> dict[str, Any]:
        """Send a CALL to a connected station and return its answer's payload.

        With ``epoch``, only to the link of that epoch: a caller that knew an
        older link must not reach a newer one by accident, nor a stale one.
        """
        connection = self._registry.get(station_id)
        if connection is None or (epoch is not None and connection.link.epoch != epoch):
            raise StationNotConnected(station_id)
        validator = get_validator(connection.link.version)
        validator.validate_request(action, payload)
        wait = timeout or self._settings.call_timeout.total_seconds()
        connection.log.info("ocpp.call.sent", action=action)
        try:
            answer = await connection.calls.call(
                action, payload, send=connection.socket.send, timeout=wait
            )
        except ConnectionClosed as exc:
            # The link closed while this call waited for its turn to be sent.
            raise StationNotConnected(station_id) from exc
        validator.validate_response(action, answer)
        return answer

    # -- the handshake -----------------------------------------------------------

    async def _authenticate(
        self, socket: ServerConnection, request: Request, *, profile: int
    ) -> Response | None:
        """Refuse, before any OCPP message is read, whoever is not a station.

        ``profile`` is the security profile of the listener the request came in on.
        Profiles 1 and 2: HTTP Basic auth on the upgrade request, the user name
        being the station id in the URL (2.0.1 A00.FR.201..206); profile 2 inside
        TLS. Profile 3: the TLS handshake verified the client certificate, whose
        commonName must be the station id in the URL; an Authorization header is
        not needed and not looked at. A station registered at a higher profile
        than the listener's is refused whatever it sent.
        """
        address = _address_of(socket)
        station_id = station_id_from_path(request.path)
        if station_id is None:
            return _refuse(
                socket,
                HTTPStatus.NOT_FOUND,
                "Stations connect at /ocpp/<station-id>.",
            )
        if not set(SUBPROTOCOLS) & set(_offered_subprotocols(request.headers)):
            return _refuse(
                socket,
                HTTPStatus.BAD_REQUEST,
                "Offer the WebSocket subprotocol ocpp2.0.1 or ocpp1.6.",
            )
        # Before anything touches the database: a reconnect storm during an
        # outage costs nothing but this answer.
        if self._database is not None and not self._database.available:
            return _refuse_unavailable(socket)

        # Slow down whoever failed recently, before looking at the password,
        # so that guessing costs time without locking the real station out.
        # Never as long as the handshake may take: the server would drop the
        # connection before the password is checked, a lockout after all.
        delay = min(
            self._throttle.delay_for(station_id=station_id, address=address),
            self._settings.handshake_timeout.total_seconds() / 2,
        )
        if delay > 0:
            await asyncio.sleep(delay)

        refuse = functools.partial(
            self._refuse_auth, socket, station_id, address, profile=profile
        )
        credentials = None
        if profile == 3:
            certified_id = common_name_of(_peer_certificate(socket))
            if certified_id != station_id:
                return await refuse(
                    "certificate_mismatch",
                    kind="certificate_mismatch",
                    details={"certificate_station_id": certified_id},
                )
        else:
            credentials = parse_basic_auth(request.headers.get("Authorization"))
            if credentials is None:
                return await refuse("missing_credentials")
            if credentials.username != station_id:
                return await refuse("username_mismatch")
        try:
            stored = await self._stations.get_credentials(station_id)
        except Exception as exc:
            if not is_transient(exc):
                raise
            if self._database is not None:
                self._database.report_failure(exc)
            logger.warning(
                "ocpp.auth.database_unavailable",
                station_id=station_id,
                error=type(exc).__name__,
            )
            return _refuse_unavailable(socket)
        if stored is None:
            return await refuse("unknown_station", status=HTTPStatus.NOT_FOUND)

        # Before the password, and answered exactly like a wrong one: a weaker
        # listener must never confirm the password of a station that should use
        # a stronger profile, nor tell it apart from a failed guess.
        if stored.security_profile > profile:
            return await refuse(
                "profile_downgrade",
                kind="profile_downgrade",
                details={"station_security_profile": stored.security_profile},
            )
        if credentials is not None and not verify_password(
            credentials.password, stored.password_hash
        ):
            return await refuse("wrong_password")
        self._throttle.record_success(station_id=station_id, address=address)
        return None

    async def _refuse_auth(
        self,
        socket: ServerConnection,
        station_id: str,
        address: str,
        reason: str,
        *,
        profile: int,
        status: HTTPStatus = HTTPStatus.UNAUTHORIZED,
        kind: str = "auth_failed",
        details: dict[str, Any] | None = None,
    ) -> Response:
        """Count, log and store a refused handshake; answer it without detail.

        ``kind`` names the stored security event: ``auth_failed`` for a bad or
        missing credential, ``certificate_mismatch`` and ``profile_downgrade``
        for the attempts an operator looks for by name.
        """
        self._throttle.record_failure(station_id=station_id, address=address)
        logger.warning(
            "ocpp.auth.failed",
            station_id=station_id,
            source_address=address,
            reason=reason,
            security_profile=profile,
            security_event=True,
            **(details or {}),
        )
        await self._stations.record_event(
            station_id,
            kind,
            security=True,
            source_address=address,
            details={"reason": reason, "security_profile": profile, **(details or {})},
        )
        if status is HTTPStatus.NOT_FOUND:
            return _refuse(socket, status, "Unknown station.")
        if profile == 3:
            return _refuse(
                socket, status, "Present the station's own client certificate."
            )
        response = _refuse(
            socket, status, "Authenticate with the station's id and password."
        )
        response.headers["WWW-Authenticate"] = 'Basic realm="csms", charset="UTF-8"'
        return response

    # -- a station's connection --------------------------------------------------

    async def _serve_station(self, socket: ServerConnection, *, profile: int) -> None:
        assert socket.request is not None
        station_id = station_id_from_path(socket.request.path)
        assert station_id is not None
        version = OcppVersion(str(socket.subprotocol))
        log = logger.bind(
            station_id=station_id,
            ocpp_version=version.value,
            security_profile=profile,
        )
        address = _address_of(socket)
        connection = StationConnection(
            socket=socket,
            link=StationLink(
                station_id=station_id,
                version=version,
                booted=False,
                state=StationState.UNAVAILABLE,
            ),
            log=log,
            rate=MessageRateLimiter(
                rate=self._settings.station_message_rate,
                burst=self._settings.station_message_burst,
                patience=self._settings.station_flood_patience,
                now=time.monotonic(),
            ),
        )

        if self._flaps.connected(station_id, now=self._clock.monotonic()):
            log.warning(
                "ocpp.connection.flapping",
                source_address=address,
                security_event=True,
            )
            self._spawn(
                self._stations.record_event(
                    station_id,
                    "flapping_connection",
                    security=True,
                    source_address=address,
                    details={
                        "connections": self._settings.flap_threshold,
                        "window_seconds": self._settings.flap_window.total_seconds(),
                    },
                ),
                name=f"flap-event-{station_id}",
            )

        # The newest authenticated connection wins; the old one is closed.
        previous = self._registry.register(station_id, connection)
        self._monitor.seen(station_id, now=self._clock.monotonic())
        if previous is not None:
            log.warning(
                "ocpp.connection.replaced",
                source_address=address,
                security_event=True,
            )
            self._spawn(
                previous.socket.close(CLOSE_REPLACED, "replaced by a newer connection"),
                name=f"close-replaced-{station_id}",
            )
        try:
            async with self._link_lock(station_id):
                if previous is not None:
                    await self._stations.record_event(
                        station_id,
                        "duplicate_connection",
                        security=True,
                        source_address=address,
                    )
                outcome = await self._stations.mark_connected(
                    station_id, ocpp_version=version.value, gateway=self.gateway_id
                )
            connection.link.booted = outcome.booted
            connection.link.state = outcome.state
            connection.link.epoch = outcome.epoch
            if self._on_link is not None:
                self._on_link(station_id, version, outcome.epoch)
            self._monitor.set_charging(
                station_id, outcome.state is StationState.CHARGING
            )
            log.info("ocpp.connection.opened", source_address=address)
            if self._on_connected is not None:
                self._spawn(
                    self._on_connected(station_id, version),
                    name=f"connected-{station_id}",
                )
            await self._read_frames(connection)
        except StationNotFound:
            log.warning("ocpp.connection.station_removed")
        finally:
            await self._close_link(connection)

    async def _read_frames(self, connection: StationConnection) -> None:
        socket = connection.socket
        station_id = connection.link.station_id
        try:
            async for raw in socket:
                now = self._clock.monotonic()
                self._monitor.seen(station_id, now=now)
                self._seen[station_id] = self._clock.now()
                # Real time, not the injected clock: this limits real throughput.
                decision = connection.rate.admit(now=time.monotonic())
                if decision.verdict is RateVerdict.DISCONNECT:
                    await self._disconnect_flooding(connection)
                    return
                if decision.verdict is RateVerdict.SLOW_DOWN:
                    # Not reading meanwhile: TCP slows this station alone.
                    await asyncio.sleep(decision.wait)
                reply = await self.handle_frame(connection, raw)
                if reply is not None:
                    await socket.send(reply)
        except ConnectionClosed:
            pass

    async def _disconnect_flooding(self, connection: StationConnection) -> None:
        station_id = connection.link.station_id
        address = _address_of(connection.socket)
        connection.log.warning(
            "ocpp.station.flooding", source_address=address, security_event=True
        )
        await self._stations.record_event(
            station_id,
            "message_flood",
            security=True,
            source_address=address,
            details={"rate": self._settings.station_message_rate},
        )
        await connection.socket.close(CLOSE_POLICY_VIOLATION, "too many messages")

    async def _close_link(self, connection: StationConnection) -> None:
        station_id = connection.link.station_id
        connection.calls.fail_all(StationNotConnected(station_id))
        if not self._registry.unregister(station_id, connection):
            connection.log.info("ocpp.connection.closed", replaced=True)
            return
        self._monitor.forget(station_id)
        async with self._link_lock(station_id):
            # A newer connection may have registered while we waited.
            if self._registry.get(station_id) is not None:
                return
            if connection.link.epoch is None:
                # Never stored as connected (the connect itself failed).
                return
            if self._on_link is not None:
                self._on_link(station_id, None, connection.link.epoch)
            try:
                outcome = await self._stations.mark_offline(
                    station_id, epoch=connection.link.epoch
                )
            except StationNotFound:
                return
            except StaleOwner:
                # A newer link, on another gateway, owns the station now.
                connection.log.info("ocpp.connection.closed", superseded=True)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # TODO: the station stays marked online until it reconnects or
                # the CSMS restarts: an outage loses this offline mark.
                if self._database is not None:
                    self._database.report_failure(exc)
                connection.log.warning(
                    "ocpp.connection.closed",
                    code=connection.socket.close_code,
                    offline_not_stored=True,
                    error=type(exc).__name__,
                )
                return
        connection.log.info(
            "ocpp.connection.closed",
            code=connection.socket.close_code,
            state=outcome.state.value,
        )

    # -- frames ------------------------------------------------------------------

    async def handle_frame(
        self, connection: StationConnection, raw: str | bytes
    ) -> str | None:
        """Turn one received frame into the text to send back, if any."""
        version = connection.link.version
        try:
            frame = parse_frame(raw)
        except FrameError as exc:
            connection.log.warning(
                "ocpp.frame.rejected", kind=exc.kind.value, reason=exc.description
            )
            return encode_error(
                exc.message_id, error_code(exc.kind, version), exc.description
            )
        if isinstance(frame, Call):
            return await self._handle_call(connection, frame)
        if not connection.calls.resolve(frame):
            connection.log.warning(
                "ocpp.answer.unexpected", message_id=frame.message_id
            )
        return None

    async def _handle_call(
        self, connection: StationConnection, call: Call
    ) -> str | None:
        link = connection.link
        log = connection.log.bind(message_id=call.message_id, action=call.action)

        # Metrics: every answer is counted by its outcome, and timed.
        received = time.perf_counter()

        def refuse(kind: ErrorKind, description: str) -> str:
            code = error_code(kind, link.version)
            # A made-up action name must not become a new time series.
            known = get_validator(link.version).knows(call.action)
            self._metrics.observe_ocpp_call(
                call.action if known else "unknown",
                code,
                time.perf_counter() - received,
            )
            return encode_error(call.message_id, code, description)

        validator = get_validator(link.version)
        handler = ROUTES[link.version].get(call.action)
        if handler is None:
            # NotImplemented: an action this version does not define;
            # NotSupported: one it defines but this CSMS does not handle.
            known = validator.knows(call.action)
            log.warning("ocpp.call.unhandled", known=known)
            if known:
                return refuse(
                    ErrorKind.NOT_SUPPORTED, f"{call.action} is not supported."
                )
            return refuse(ErrorKind.NOT_IMPLEMENTED, f"Unknown action {call.action}.")
        try:
            validator.validate_request(call.action, call.payload)
        except SchemaViolation as exc:
            log.warning(
                "ocpp.call.invalid", kind=exc.kind.value, reason=exc.description
            )
            return refuse(exc.kind, exc.description)
        if not link.booted and call.action not in PRE_BOOT_ACTIONS:
            log.warning("ocpp.call.before_boot")
            return refuse(
                ErrorKind.SECURITY_ERROR,
                "Send a BootNotification and wait for Accepted first.",
            )

        log.debug("ocpp.call.received", payload=mask_tokens(call.payload))
        context = HandlerContext(
            link=link, services=self._services, log=log, message_id=call.message_id
        )
        try:
            response = await handler(context, call.payload)
        except StaleOwner:
            # A newer link elsewhere owns the station: nothing of this one is
            # stored, and the station, if it is still here, hears so by a close.
            log.warning("ocpp.call.stale_owner")
            self._spawn(
                connection.socket.close(
                    CLOSE_REPLACED, "replaced by a newer connection"
                ),
                name=f"close-stale-{link.station_id}",
            )
            return None
        except Exception as exc:
            if not is_transient(exc):
                log.exception("ocpp.call.failed")
                return refuse(ErrorKind.INTERNAL_ERROR, "The CSMS could not handle it.")
            # Our database failed, and it will pass. No CALLERROR: a station
            # counts it as a failed attempt and, after a few, discards a
            # transaction message. Closing makes it resend after reconnecting.
            log.warning("ocpp.call.database_unavailable", error=type(exc).__name__)
            if self._database is not None:
                self._database.report_failure(exc)
            self._close_try_again(connection)
            return None
        self._monitor.set_charging(link.station_id, link.state is StationState.CHARGING)
        self._metrics.observe_ocpp_call(
            call.action, "result", time.perf_counter() - received
        )
        return encode_result(call.message_id, response)

    def _close_try_again(self, connection: StationConnection) -> None:
        self._spawn(
            connection.socket.close(CLOSE_TRY_AGAIN, "try again"),
            name=f"close-try-again-{connection.link.station_id}",
        )

    def _close_all_for_outage(self) -> None:
        """Close every station's link: the database is down, and what they send
        could not be stored. They reconnect once it is back (503 until then)."""
        station_ids = self._registry.station_ids()
        logger.warning("ocpp.gateway.closing_for_outage", stations=len(station_ids))
        for station_id in station_ids:
            connection = self._registry.get(station_id)
            if connection is not None:
                self._close_try_again(connection)

    # -- liveness ----------------------------------------------------------------

    async def check_liveness(self) -> DueActions:
        """One tick of the watchdog: ping, drop dead links, mark silent stations."""
        due = self._monitor.due(now=self._clock.monotonic())
        for station_id in due.ping:
            connection = self._registry.get(station_id)
            if connection is not None:
                await self._ping(connection)
        for station_id in due.dead:
            connection = self._registry.get(station_id)
            if connection is not None:
                connection.log.warning("ocpp.link.dead", reason="no pong")
                self._forget_link(connection)
        for station_id in due.silent:
            connection = self._registry.get(station_id)
            if connection is not None:
                connection.log.warning("ocpp.link.silent")
                self._forget_link(connection)
        await self.flush_last_seen()
        return due

    def _forget_link(self, connection: StationConnection) -> None:
        # Abort rather than close: a silent peer would not answer a closing
        # handshake either. The reader then ends and marks the station offline.
        self._monitor.forget(connection.link.station_id)
        connection.socket.transport.abort()

    async def _ping(self, connection: StationConnection) -> None:
        station_id = connection.link.station_id
        try:
            waiter = await connection.socket.ping()
        except ConnectionClosed:
            return
        self._monitor.pinged(station_id, now=self._clock.monotonic())

        def on_pong(future: asyncio.Future[float]) -> None:
            if future.cancelled() or future.exception() is not None:
                return
            if self._registry.get(station_id) is connection:
                self._monitor.seen(station_id, now=self._clock.monotonic())
                self._seen[station_id] = self._clock.now()

        asyncio.ensure_future(waiter).add_done_callback(on_pong)

    async def flush_last_seen(self) -> None:
        """Write last-seen times in one batch: never one UPDATE per heartbeat."""
        if not len(self._seen):
            return
        batch = self._seen.take()
        try:
            await self._stations.record_last_seen(batch)
        except Exception as exc:
            # Keep the newest of what was lost and what arrived since; the
            # batch is bounded, so a long outage drops the oldest instead.
            self._seen.restore(batch)
            if not is_transient(exc):
                logger.exception("ocpp.liveness.flush_failed", stations=len(batch))
                return
            if self._database is not None:
                self._database.report_failure(exc)
            logger.warning(
                "ocpp.liveness.flush_postponed",
                stations=len(batch),
                error=type(exc).__name__,
                dropped_total=self._seen.dropped,
            )

    async def _watch_liveness(self) -> None:
        interval = self._settings.liveness_check_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_liveness()
            except Exception:
                logger.exception("ocpp.liveness.tick_failed")

    # -- helpers -----------------------------------------------------------------

    def _link_lock(self, station_id: str) -> asyncio.Lock:
        lock = self._link_locks.get(station_id)
        if lock is None:
            lock = asyncio.Lock()
            self._link_locks[station_id] = lock
        return lock

    def _spawn(self, coroutine: Any, *, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "gateway.task.failed", task=task.get_name(), exc_info=task.exception()
            )


def station_id_from_path(path: str) -> str | None:
    """The station id in ``/ocpp/<station-id>``, URL-decoded; None for other paths."""
    route = urlsplit(path).path
    if not route.startswith(PATH_PREFIX):
        return None
    station_id = unquote(route[len(PATH_PREFIX) :])
    if not station_id or "/" in station_id:
        return None
    return station_id


def _offered_subprotocols(headers: Headers) -> Iterable[str]:
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        for item in value.split(","):
            yield item.strip()


def _peer_certificate(socket: ServerConnection) -> dict[str, Any] | None:
    """The client certificate the TLS handshake verified; None without TLS."""
    ssl_object = socket.transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    return ssl_object.getpeercert()


def _port_of(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


def _address_of(socket: ServerConnection) -> str:
    remote = socket.remote_address
    return str(remote[0]) if remote else "unknown"


def _refuse(socket: ServerConnection, status: HTTPStatus, reason: str) -> Response:
    return socket.respond(status, reason + "\n")


def _refuse_unavailable(socket: ServerConnection) -> Response:
    response = _refuse(
        socket,
        HTTPStatus.SERVICE_UNAVAILABLE,
        "The CSMS cannot store what stations send just now; try again later.",
    )
    response.headers["Retry-After"] = "5"
    return response


__all__ = ["CallTimeout", "Gateway", "StationConnection", "StationNotConnected"]
