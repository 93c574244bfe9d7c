"""The ``csms`` command: serve, migrate, and manage stations and operators."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from csms.clock import SystemClock
from csms.db.engine import create_engine, create_sessionmaker
from csms.db.migrate import migrate
from csms.errors import CsmsError, StationAlreadyExists
from csms.logs import configure_logging
from csms.operators.service import OperatorService
from csms.settings import LogFormat, Settings
from csms.stations.credentials import generate_password
from csms.stations.service import StationService

_T = TypeVar("_T")

app = typer.Typer(
    pretty_exceptions_show_locals=False,
    help="A Charging Station Management System (OCPP 1.6J and 2.0.1).",
)
station_app = typer.Typer(help="Register and list charging stations.")
operator_app = typer.Typer(help="Manage operator accounts.")
certs_app = typer.Typer(
    help="A development CA and certificates, to try OCPP security profiles 2 and 3."
)
app.add_typer(station_app, name="station")
app.add_typer(operator_app, name="operator")
app.add_typer(certs_app, name="certs")

LogFormatOption = Annotated[
    LogFormat | None,
    typer.Option("--log-format", help="console (default) or json."),
]


def _settings(log_format: LogFormat | None = None) -> Settings:
    settings = Settings()
    if log_format is not None:
        settings = settings.model_copy(update={"log_format": log_format})
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    return settings


def _run_sync(work: Callable[[], _T]) -> _T:
    try:
        return work()
    except CsmsError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from exc


def _run(
    work: Callable[[Settings], Coroutine[Any, Any, _T]],
    settings: Settings,
    *,
    event_loop: str = "asyncio",
) -> _T:
    runner: Callable[[Coroutine[Any, Any, _T]], _T] = asyncio.run
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            runner = uvloop.run
    try:
        return runner(work(settings))
    except CsmsError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from exc


RoleOption = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        help="What this process runs: gateway, api, worker or all (the default). "
        "Repeat it for several.",
    ),
]


@app.command()
def serve(
    log_format: LogFormatOption = None,
    role: RoleOption = None,
    gateways: Annotated[
        int,
        typer.Option(
            min=0,
            help="Start this many gateway processes sharing the OCPP port; this "
            "process then runs the other roles. Needs CSMS_BUS_URL (Redis or NATS).",
        ),
    ] = 0,
    event_loop: Annotated[
        str,
        typer.Option(help="asyncio or uvloop (faster sockets, where installed)."),
    ] = "uvloop",
) -> None:
    """Run the CSMS until SIGTERM or Ctrl-C: by default every role in one process."""
    if event_loop not in ("asyncio", "uvloop"):
        raise typer.BadParameter("asyncio or uvloop", param_hint="--event-loop")
    # Imported here: the web stack takes seconds to import, which every other
    # command (station add, operator add, migrate) would pay for nothing.
    from csms.app import Csms
    from csms.cluster import Role, is_in_process
    from csms.supervisor import GatewayProcesses

    settings = _settings(log_format)
    try:
        roles = {Role(name) for item in role or ["all"] for name in item.split(",")}
    except ValueError as exc:
        raise typer.BadParameter(
            "a role is gateway, api, worker or all", param_hint="--role"
        ) from exc
    if gateways:
        if is_in_process(settings.bus_url):
            raise typer.BadParameter(
                "several gateway processes need a bus between them: set "
                "CSMS_BUS_URL=redis://127.0.0.1:6379/0 or nats://127.0.0.1:4222",
                param_hint="--gateways",
            )
        # The gateways run in their own processes; this one keeps the rest.
        roles = {Role.API, Role.WORKER} if Role.ALL in roles else roles
        roles -= {Role.GATEWAY}
        if not roles:
            raise typer.BadParameter(
                "with --gateways this process runs api and/or worker",
                param_hint="--role",
            )

    async def run(settings: Settings) -> None:
        csms = Csms(settings, roles=roles)
        children = GatewayProcesses(settings, count=gateways, log_format=log_format)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await csms.start()
        children.start()
        _announce(settings, csms, gateways=gateways)
        try:
            await children.supervise(until=stop)
        finally:
            await children.stop()
            await csms.stop()

    _run(run, settings, event_loop=event_loop)


def _announce(settings: Settings, csms: Any, *, gateways: int) -> None:
    """Say where this process listens, one line, in a form scripts can read."""
    from csms.cluster import Role

    parts = []
    if Role.API in csms.roles:
        parts.append(f"HTTP API http://{settings.http_host}:{csms.http_port}/docs")
    if Role.GATEWAY in csms.roles or gateways:
        port = csms.ocpp_port if Role.GATEWAY in csms.roles else settings.ocpp_port
        where = f"stations ws://{settings.ocpp_host}:{port}/ocpp/<station-id>"
        if gateways:
            where += f" ({gateways} gateway processes)"
        parts.append(where)
    roles = ",".join(sorted(role.value for role in csms.roles))
    if Role.GATEWAY in csms.roles and len(csms.roles) == 1:
        roles += f" {csms.gateway.gateway_id}"
    typer.echo(f"CSMS running ({roles}): " + ", ".join(parts), err=True)
    if Role.GATEWAY in csms.roles:
        for profile, tls_port in (
            (2, csms.gateway.tls_port),
            (3, csms.gateway.mtls_port),
        ):
            if tls_port is not None:
                typer.echo(
                    f"security profile {profile}: "
                    f"wss://{settings.ocpp_host}:{tls_port}/ocpp/<station-id>",
                    err=True,
                )


@app.command("migrate")
def migrate_command(log_format: LogFormatOption = None) -> None:
    """Create or upgrade the database schema."""
    settings = _settings(log_format)

    async def run(settings: Settings) -> None:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    _run(run, settings)
    typer.echo("database is up to date", err=True)


async def _with_stations(
    settings: Settings, work: Callable[[StationService], Awaitable[_T]]
) -> _T:
    engine = create_engine(settings.database_url)
    try:
        return await work(
            StationService(create_sessionmaker(engine), clock=SystemClock())
        )
    finally:
        await engine.dispose()


@station_app.command("add")
def station_add(
    station_id: Annotated[str, typer.Argument(metavar="ID")],
    password: Annotated[
        str | None, typer.Option(help="16-40 characters; generated when left out.")
    ] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude.")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for people.")] = None,
    security_profile: Annotated[
        int,
        typer.Option(
            min=1,
            max=3,
            help="Lowest OCPP security profile it may connect with: 1 Basic auth, "
            "2 TLS + Basic auth, 3 client certificate.",
        ),
    ] = 1,
) -> None:
    """Register a station; prints its password when one is generated."""
    settings = _settings()

    async def run(settings: Settings) -> str | None:
        async def add(stations: StationService) -> str | None:
            _, generated = await stations.register(
                station_id,
                password=password,
                name=name,
                latitude=lat,
                longitude=lon,
                security_profile=security_profile,
            )
            return generated

        return await _with_stations(settings, add)

    generated = _run(run, settings)
    typer.echo(f"station {station_id} registered", err=True)
    if generated is not None:
        typer.echo("password (shown only now):", err=True)
        typer.echo(generated)


@station_app.command("import")
def station_import(
    csv_file: Annotated[Path, typer.Argument(metavar="FILE.csv", exists=True)],
    passwords_out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write generated passwords (default: FILE.passwords.csv)."
        ),
    ] = None,
) -> None:
    """Register every station in a CSV file (id,latitude,longitude,name,password).

    All rows are checked first; one bad row imports nothing. Generated passwords
    are written once, to a file only its owner can read.
    """
    from csms.stations.bulk import StationImporter, parse_csv, render_passwords_csv

    settings = _settings()
    target = passwords_out or csv_file.with_suffix(".passwords.csv")
    if target.exists():
        raise typer.BadParameter(
            f"{target} exists; move it away first", param_hint="--passwords-out"
        )
    rows = _run_sync(lambda: parse_csv(csv_file.read_text(encoding="utf-8")))

    async def run(settings: Settings) -> tuple[int, dict[str, str]]:
        engine = create_engine(settings.database_url)
        try:
            importer = StationImporter(create_sessionmaker(engine), clock=SystemClock())
            result = await importer.import_rows(rows)
        finally:
            await engine.dispose()
        return result.imported, result.generated_passwords

    started = time.monotonic()
    imported, generated = _run(run, settings)
    elapsed = time.monotonic() - started
    if generated:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(render_passwords_csv(generated))
    typer.echo(f"imported {imported} stations in {elapsed:.1f} s", err=True)
    if generated:
        typer.echo(
            f"{len(generated)} generated passwords written to {target}", err=True
        )


@station_app.command("list")
def station_list() -> None:
    """List registered stations with their state."""
    settings = _settings()

    async def run(settings: Settings) -> list[str]:
        async def rows(stations: StationService) -> list[str]:
            lines: list[str] = []
            after: str | None = None
            while True:
                page = await stations.list_stations(limit=500, after=after)
                for s in page:
                    where = (
                        f"{s.latitude:.5f},{s.longitude:.5f}"
                        if s.latitude is not None and s.longitude is not None
                        else "-"
                    )
                    lines.append(
                        f"{s.id}\t{s.state}\t{'online' if s.online else 'offline'}"
                        f"\t{s.ocpp_version or '-'}\t{where}\t{s.name or ''}"
                    )
                if len(page) < 500:
                    return lines
                after = page[-1].id

        return await _with_stations(settings, rows)

    lines = _run(run, settings)
    typer.echo("id\tstate\tlink\tocpp\tlocation\tname")
    for line in lines:
        typer.echo(line)


@station_app.command("set-password")
def station_set_password(
    station_id: Annotated[str, typer.Argument(metavar="ID")],
    password: Annotated[
        str | None, typer.Option(help="16-40 characters; generated when left out.")
    ] = None,
) -> None:
    """Rotate a station's password; prints the new one when generated."""
    settings = _settings()

    async def run(settings: Settings) -> str:
        async def change(stations: StationService) -> str:
            return await stations.set_password(station_id, password=password)

        return await _with_stations(settings, change)

    new_password = _run(run, settings)
    if password is None:
        typer.echo(new_password)


@station_app.command("set-security-profile")
def station_set_security_profile(
    station_id: Annotated[str, typer.Argument(metavar="ID")],
    profile: Annotated[int, typer.Argument(metavar="PROFILE", min=1, max=3)],
) -> None:
    """Refuse the station below PROFILE (1-3) from its next connection on."""
    settings = _settings()

    async def run(settings: Settings) -> None:
        async def change(stations: StationService) -> None:
            await stations.set_security_profile(station_id, profile)

        await _with_stations(settings, change)

    _run(run, settings)
    typer.echo(f"station {station_id} now needs security profile {profile}", err=True)


CertsDirOption = Annotated[
    Path, typer.Option("--dir", help="Where the CA and certificates are kept.")
]


@certs_app.command("init")
def certs_init(
    directory: CertsDirOption = Path("var") / "certs",
    host: Annotated[
        list[str] | None,
        typer.Option(
            help="A name or IP address stations use to reach the CSMS; repeat for "
            "more. localhost and 127.0.0.1 are always included."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing CA (its certificates die).")
    ] = False,
) -> None:
    """Create a development CA and the CSMS's server certificate."""
    from csms.security.certs import (
        DEFAULT_HOSTS,
        CertificateError,
        write_development_ca,
    )

    try:
        written = write_development_ca(
            directory, hosts=host or DEFAULT_HOSTS, overwrite=force
        )
    except CertificateError as exc:
        typer.echo(f"error: {exc} (--force replaces it)", err=True)
        raise typer.Exit(code=1) from exc
    for path in (
        written.ca.certificate,
        written.ca.key,
        written.server.certificate,
        written.server.key,
    ):
        typer.echo(f"wrote {path}", err=True)
    typer.echo("serve security profiles 2 and 3 with:", err=True)
    typer.echo(f"CSMS_TLS_CERT_FILE={written.server.certificate}")
    typer.echo(f"CSMS_TLS_KEY_FILE={written.server.key}")
    typer.echo(f"CSMS_TLS_CA_FILE={written.ca.certificate}")


@certs_app.command("station")
def certs_station(
    station_id: Annotated[str, typer.Argument(metavar="ID")],
    directory: CertsDirOption = Path("var") / "certs",
    organization: Annotated[
        str | None, typer.Option(help="The operator (O=); the CA's when left out.")
    ] = None,
) -> None:
    """Issue a client certificate for station ID (its commonName) from the CA."""
    from csms.security.certs import CertificateError, write_station_certificate

    try:
        written = write_station_certificate(
            directory, station_id, organization=organization
        )
    except CertificateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"wrote {written.certificate}", err=True)
    typer.echo(f"wrote {written.key}", err=True)
    typer.echo(
        f"station {station_id} connects at security profile 3 with these two files, "
        f"trusting {directory / 'ca.pem'} for the CSMS (CSMS_TLS_CA_FILE).",
        err=True,
    )


@operator_app.command("add")
def operator_add(email: str) -> None:
    """Create an operator account; prints its API token, shown only now."""
    settings = _settings()

    async def run(settings: Settings) -> str:
        engine = create_engine(settings.database_url)
        try:
            operators = OperatorService(
                create_sessionmaker(engine), clock=SystemClock()
            )
            return await operators.add(email)
        finally:
            await engine.dispose()

    token = _run(run, settings)
    typer.echo(f"operator {email} created; API token (shown only now):", err=True)
    typer.echo(token)


@app.command()
def simulate(
    url: Annotated[
        str, typer.Option(help="The CSMS's station endpoint, without the id.")
    ] = "ws://127.0.0.1:9000/ocpp",
    station: Annotated[
        list[str] | None,
        typer.Option(
            help="ID:PASSWORD of a registered station; repeat for more.",
        ),
    ] = None,
    count: Annotated[
        int, typer.Option(help="Register and run COUNT new stations SIM-0001….")
    ] = 0,
    version: Annotated[
        str, typer.Option(help="ocpp1.6, ocpp2.0.1, or mixed.")
    ] = "ocpp1.6",
    meter_interval: Annotated[float, typer.Option(help="Seconds.")] = 10.0,
    time_factor: Annotated[
        float, typer.Option(help="Simulated seconds per real second.")
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds.")
    ] = None,
) -> None:
    """Run simulated stations that boot, heartbeat and charge when told to."""
    from csms.simulator.fleet import StationSpec, run_fleet
    from csms.simulator.station import V16, V201, SimulatorOptions

    settings = _settings()
    versions = {"ocpp1.6": [V16], "ocpp2.0.1": [V201], "mixed": [V16, V201]}
    if version not in versions:
        raise typer.BadParameter(
            "use ocpp1.6, ocpp2.0.1 or mixed", param_hint="--version"
        )
    specs: list[StationSpec] = []
    for index, item in enumerate(station or []):
        station_id, _, password = item.partition(":")
        if not password:
            raise typer.BadParameter("give ID:PASSWORD", param_hint="--station")
        choice = versions[version][index % len(versions[version])]
        specs.append(StationSpec(station_id, password, choice))

    async def run(settings: Settings) -> None:
        if count:

            async def register(stations: StationService) -> None:
                for index in range(count):
                    station_id = f"SIM-{index + 1:04d}"
                    password = generate_password()
                    with contextlib.suppress(StationAlreadyExists):
                        await stations.register(station_id)
                    await stations.set_password(station_id, password=password)
                    choice = versions[version][index % len(versions[version])]
                    specs.append(StationSpec(station_id, password, choice))

            await _with_stations(settings, register)
        if not specs:
            raise typer.BadParameter("give --station ID:PASSWORD or --count N")
        options = SimulatorOptions(
            meter_interval=meter_interval, time_factor=time_factor
        )
        progress = await run_fleet(url, specs, options=options, duration=duration)
        for failure in progress.failures:
            typer.echo(f"failed: {failure}", err=True)

    _run(run, settings)


@app.command()
def load(
    credentials: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            help="id,password CSV, as `csms station import` writes it; without "
            "it, --stations ids LOAD-000001… connect with no Authorization header.",
        ),
    ] = None,
    url: Annotated[str, typer.Option()] = "ws://127.0.0.1:9000/ocpp",
    stations: Annotated[
        int | None, typer.Option(help="Use only the first N stations.")
    ] = None,
    processes: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    duration: Annotated[float, typer.Option(help="Seconds.")] = 60.0,
    heartbeat_interval: Annotated[
        float | None, typer.Option(help="Seconds; default: what the CSMS says.")
    ] = None,
    charging_share: Annotated[
        float, typer.Option(help="Share of stations that charge (0..1).")
    ] = 0.0,
    meter_interval: Annotated[float, typer.Option(help="Seconds.")] = 60.0,
    charge_duration: Annotated[float, typer.Option(help="Seconds.")] = 120.0,
    v201_share: Annotated[
        float, typer.Option(help="Share of stations speaking 2.0.1 (0..1).")
    ] = 0.0,
    max_handshakes: Annotated[
        int, typer.Option(help="Handshakes in flight per process.")
    ] = 200,
    connect_rate: Annotated[
        float | None,
        typer.Option(help="New stations per second (default: all at once)."),
    ] = None,
    reconnect: Annotated[
        bool,
        typer.Option(
            help="Reconnect (and boot again) after a dropped link or a failed "
            "attempt, with a randomised doubling delay."
        ),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option(help="Also write the figures to this JSON file.")
    ] = None,
) -> None:
    """Drive many stations at a CSMS and print latency percentiles per action."""
    import orjson

    from csms.simulator.load import (
        LoadProfile,
        build_anonymous_fleet,
        format_report,
        read_credentials,
        run_load,
        summarize,
    )

    if credentials is not None:
        fleet = read_credentials(credentials)[:stations]
    elif stations is not None:
        fleet = build_anonymous_fleet(stations)
    else:
        raise typer.BadParameter("give --credentials or --stations")
    profile = LoadProfile(
        url=url,
        duration=duration,
        heartbeat_interval=heartbeat_interval,
        charging_share=charging_share,
        meter_interval=meter_interval,
        charge_duration=charge_duration,
        max_handshakes=max_handshakes,
        connect_rate=connect_rate,
        v201_share=v201_share,
        reconnect=reconnect,
    )
    merged = run_load(fleet, profile, processes=processes)
    typer.echo(format_report(merged))
    if json_out is not None:
        json_out.write_bytes(
            orjson.dumps(summarize(merged), option=orjson.OPT_INDENT_2)
        )
    if merged["connected"] < len(fleet) or merged["errors"]:
        raise typer.Exit(code=2)


@app.command()
def demo(
    keep_running: Annotated[
        bool, typer.Option(help="Leave the CSMS and stations running afterwards.")
    ] = False,
) -> None:
    """Start the CSMS with three simulated stations and walk a customer's journey."""
    from csms.simulator.demo import run_demo

    settings = _settings()

    async def run(settings: Settings) -> None:
        await run_demo(settings, keep_running=keep_running)

    _run(run, settings)


def main() -> None:
    app()
