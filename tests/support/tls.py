"""Stations over TLS: a development CA for the tests, client contexts, wss clients."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v201 import ChargePoint as ChargePoint201
from websockets.asyncio.client import ClientConnection

from csms.security.certs import (
    WrittenFiles,
    write_development_ca,
    write_station_certificate,
)

from support.stations import V16, StationClient, basic_auth


@dataclass(frozen=True)
class DevelopmentPki:
    """A development CA in a directory, with the CSMS's server pair."""

    directory: Path
    ca_file: Path
    server: WrittenFiles

    @classmethod
    def create(cls, directory: Path) -> DevelopmentPki:
        written = write_development_ca(directory)
        return cls(directory, written.ca.certificate, written.server)

    def station(self, station_id: str) -> WrittenFiles:
        """A client certificate with ``station_id`` as its commonName."""
        certificate = self.directory / f"{station_id}.pem"
        key = self.directory / f"{station_id}.key"
        if certificate.exists():
            return WrittenFiles(certificate, key)
        return write_station_certificate(self.directory, station_id)


def client_context(
    pki: DevelopmentPki,
    *,
    certificate: WrittenFiles | None = None,
    maximum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """What a station uses: trusts the test CA, offers ``certificate`` if given."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if certificate is not None:
        context.load_cert_chain(str(certificate.certificate), str(certificate.key))
    if maximum_version is not None:
        # An outdated station on purpose: Python warns about the old versions,
        # and OpenSSL offers them only with its weakest security level.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.maximum_version = maximum_version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def open_tls_socket(
    url: str,
    *,
    ssl_context: ssl.SSLContext,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
) -> ClientConnection:
    return await websockets.connect(
        url,
        ssl=ssl_context,
        subprotocols=subprotocols or [V16],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=10,
        ping_interval=None,
    )


@contextlib.asynccontextmanager
async def connected_tls_station(
    url: str,
    station_id: str,
    *,
    ssl_context: ssl.SSLContext,
    password: str | None = None,
    version: str = V16,
) -> AsyncIterator[StationClient]:
    """Connect a station over wss (Basic auth only when ``password`` is given)."""
    socket = await open_tls_socket(
        f"{url}/{station_id}",
        ssl_context=ssl_context,
        headers=basic_auth(station_id, password) if password is not None else None,
        subprotocols=[version],
    )
    cls = ChargePoint16 if version == V16 else ChargePoint201
    charge_point = cls(station_id, socket, response_timeout=10)
    reader = asyncio.create_task(_read(charge_point))
    try:
        yield StationClient(station_id, version, socket, charge_point, reader)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await socket.close()


async def _read(charge_point: Any) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        await charge_point.start()
