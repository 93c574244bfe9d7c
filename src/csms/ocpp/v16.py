"""OCPP 1.6J: what the CSMS does with each action a station sends.

The routing table at the bottom is the whole of what 1.6 stations can ask.
"""

from __future__ import annotations

from typing import Any

from csms.ocpp.context import HandlerContext, Routes, format_time
from csms.stations.service import BootInfo


async def on_boot_notification(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    # Registered and authenticated at the handshake: a boot is always Accepted
    # (1.6 section 4.2); the interval tells the station how often to heartbeat.
    outcome = await ctx.services.stations.accept_boot(
        ctx.link.station_id,
        BootInfo(
            vendor=payload["chargePointVendor"],
            model=payload["chargePointModel"],
            serial_number=payload.get("chargePointSerialNumber")
            or payload.get("chargeBoxSerialNumber"),
            firmware_version=payload.get("firmwareVersion"),
        ),
    )
    ctx.link.booted = True
    ctx.link.state = outcome.state
    ctx.log.info("ocpp.boot.accepted", state=outcome.state.value)
    return {
        "status": "Accepted",
        "currentTime": format_time(ctx.services.clock.now()),
        "interval": ctx.services.heartbeat_interval,
    }


async def on_heartbeat(ctx: HandlerContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": format_time(ctx.services.clock.now())}


async def on_status_notification(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    connector_id = payload["connectorId"]
    outcome = await ctx.services.stations.update_connector(
        ctx.link.station_id,
        evse_id=connector_id,
        connector_id=connector_id,
        status=payload["status"],
        error_code=payload.get("errorCode"),
    )
    ctx.link.state = outcome.state
    ctx.log.info(
        "ocpp.status.updated",
        connector_id=connector_id,
        status=payload["status"],
        state=outcome.state.value,
    )
    return {}


async def on_data_transfer(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    # No vendor extensions are known to this CSMS (1.6 section 4.3).
    return {"status": "UnknownVendorId"}


async def acknowledge(ctx: HandlerContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {}


ROUTES: Routes = {
    "BootNotification": on_boot_notification,
    "Heartbeat": on_heartbeat,
    "StatusNotification": on_status_notification,
    "DataTransfer": on_data_transfer,
    "DiagnosticsStatusNotification": acknowledge,
    "FirmwareStatusNotification": acknowledge,
}
