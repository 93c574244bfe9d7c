"""Configuration, read from ``CSMS_*`` environment variables.

Every setting is documented in ``docs/configuration.md``; keep the two in step.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_PATH = Path("var") / "csms.sqlite3"


def _seconds_from_number(value: object) -> object:
    # pydantic reads "180" as seconds but not "2.5": accept any plain number.
    if isinstance(value, str):
        try:
            return timedelta(seconds=float(value))
        except ValueError:
            return value
    return value


# A duration: seconds ("180", "2.5") or ISO 8601 ("PT3M").
Duration = Annotated[timedelta, BeforeValidator(_seconds_from_number)]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class Settings(BaseSettings):
    """What an operator can tune without touching code."""

    model_config = SettingsConfigDict(env_prefix="CSMS_", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_DATABASE_PATH}"
    # Connections this process keeps to the database, and how many more it may
    # open under load. `--gateways N` splits them over its gateway processes.
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    ocpp_host: str = "0.0.0.0"  # noqa: S104 - stations connect from the network
    ocpp_port: int = Field(default=9000, ge=0, le=65535)
    # Security profiles 2 (TLS) and 3 (mutual TLS) listen on their own ports, and
    # only once the files they need are configured.
    ocpp_tls_port: int = Field(default=9443, ge=0, le=65535)
    ocpp_mtls_port: int = Field(default=9444, ge=0, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None

    heartbeat_interval: Duration = timedelta(seconds=180)
    heartbeat_grace_factor: float = Field(default=1.5, ge=1.0)
    ping_interval_idle: Duration = timedelta(seconds=180)
    ping_interval_charging: Duration = timedelta(seconds=5)
    ping_timeout: Duration = timedelta(seconds=10)
    liveness_check_interval: Duration = timedelta(seconds=5)
    handshake_timeout: Duration = timedelta(seconds=30)
    call_timeout: Duration = timedelta(seconds=30)
    # A station may send this many messages a second, in bursts up to the burst;
    # faster, its socket is read more slowly; after `patience` slowed messages in
    # a row it is disconnected. 0 turns the limit off.
    station_message_rate: float = Field(default=20.0, ge=0)
    station_message_burst: int = Field(default=60, ge=1)
    station_flood_patience: int = Field(default=200, ge=1)
    # This many connections of one station within the window is reported as
    # flapping (a security event), once per window.
    flap_threshold: int = Field(default=10, ge=2)
    flap_window: Duration = timedelta(seconds=60)
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    # How often the database is asked whether it answers (SELECT 1): during an
    # outage, how soon stations are let back in once it returns.
    database_probe_interval: Duration = timedelta(seconds=1)

    operator_bootstrap_token: SecretStr | None = None
    # Signs customers' bearer tokens. Left unset in development, a random one is
    # made at start (tokens then end with the process); production requires one.
    jwt_secret: SecretStr | None = None
    access_token_lifetime: Duration = timedelta(minutes=30)

    nearby_max_radius_km: float = Field(default=50.0, gt=0)
    nearby_max_limit: int = Field(default=100, ge=1)
    remote_start_timeout: Duration = timedelta(seconds=60)
    # After a station connects: wait this long, then resync its open charges.
    resync_delay: Duration = timedelta(seconds=2)
    # 1.6: how long queued messages may take before a free connector closes a charge.
    resync_grace: Duration = timedelta(seconds=30)
    # A charge whose station stays offline this long is closed without its stop.
    offline_charge_grace: Duration = timedelta(hours=6)
    # Several processes: the bus between them ("memory://" in one process,
    # "redis://127.0.0.1:6379/0" or "nats://127.0.0.1:4222" across several).
    bus_url: str = "memory://"
    # Names the subjects on the bus: clusters sharing a broker stay apart.
    cluster_name: str = Field(default="csms", pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    # This gateway's name, unique in the cluster and stable across its restarts:
    # at start it releases the stations it held before.
    gateway_id: str = Field(default="local", pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    # Gateways renew a lease this often; the worker releases the stations of a
    # gateway whose lease is older than `gateway_lease_lapse`.
    gateway_lease_interval: Duration = timedelta(seconds=10)
    gateway_lease_lapse: Duration = timedelta(seconds=45)
    # Let several gateway processes listen on the same OCPP port (SO_REUSEPORT).
    ocpp_reuse_port: bool = False
    # How long the API waits for a gateway to take a command, beyond the
    # station's own answer time.
    bus_request_margin: Duration = timedelta(seconds=5)
    # Meter samples for charts: at most one per charge per interval (the
    # journal keeps every reading), buffered and written every flush interval.
    meter_sample_interval: Duration = timedelta(minutes=5)
    meter_sample_flush_interval: Duration = timedelta(seconds=5)
    meter_sample_buffer_limit: int = Field(default=200_000, ge=1)
    # PostgreSQL month partitions: how many months ahead the worker creates,
    # and how often it looks. Retention: rows older than this are dropped a
    # month partition at a time (SQLite: deleted in batches); 0 keeps them.
    partition_months_ahead: int = Field(default=3, ge=1, le=24)
    partition_maintenance_interval: Duration = timedelta(hours=6)
    record_retention: Duration = timedelta(0)
    journal_retention: Duration = timedelta(days=400)
    meter_sample_retention: Duration = timedelta(days=90)
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.CONSOLE

    @property
    def heartbeat_window(self) -> timedelta:
        """How long a station may stay silent before it counts as gone."""
        return self.heartbeat_interval * self.heartbeat_grace_factor

    @property
    def tls_enabled(self) -> bool:
        """Whether the profile 2 (TLS) listener runs."""
        return self.tls_cert_file is not None and self.tls_key_file is not None

    @property
    def mtls_enabled(self) -> bool:
        """Whether the profile 3 (mutual TLS) listener runs."""
        return self.tls_enabled and self.tls_ca_file is not None

    @model_validator(mode="after")
    def _require_complete_tls_files(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both CSMS_TLS_CERT_FILE and CSMS_TLS_KEY_FILE")
        if self.tls_ca_file is not None and not self.tls_enabled:
            raise ValueError(
                "CSMS_TLS_CA_FILE needs CSMS_TLS_CERT_FILE and CSMS_TLS_KEY_FILE too"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_in_production(self) -> Settings:
        token = self.operator_bootstrap_token
        if (
            self.environment is Environment.PRODUCTION
            and token is not None
            and len(token.get_secret_value()) < 32
        ):
            raise ValueError(
                "CSMS_OPERATOR_BOOTSTRAP_TOKEN must be at least 32 characters "
                "in production"
            )
        secret = self.jwt_secret
        if self.environment is Environment.PRODUCTION and (
            secret is None or len(secret.get_secret_value()) < 32
        ):
            raise ValueError(
                "CSMS_JWT_SECRET must be set to at least 32 characters in production"
            )
        return self
