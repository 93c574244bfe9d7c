"""OCPP 1.6J: what the CSMS does with each action a station sends.

The routing table at the bottom is the whole of what 1.6 stations can ask.
"""

from __future__ import annotations

from typing import Any

from csms.charging.meter import parse_timestamp
from csms.customers.service import AuthorizationStatus
from csms.ocpp import v201
from csms.ocpp.context import HandlerContext, Routes, format_time
from csms.stations.service import BootInfo

# 1.6 AuthorizationStatus has no "Unknown" (section 7.2): an unknown tag is Invalid.
_ID_TAG_STATUS = {
    AuthorizationStatus.ACCEPTED: "Accepted",
    AuthorizationStatus.BLOCKED: "Blocked",
    AuthorizationStatus.EXPIRED: "Expired",
    AuthorizationStatus.INVALID: "Invalid",
    AuthorizationStatus.UNKNOWN: "Invalid",
}


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
        epoch=ctx.link.epoch,
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
        epoch=ctx.link.epoch,
    )
    ctx.link.state = outcome.state
    ctx.log.info(
        "ocpp.status.updated",
        connector_id=connector_id,
        status=payload["status"],
        state=outcome.state.value,
    )
    return {}


async def on_authorize(ctx: HandlerContext, payload: dict[str, Any]) -> dict[str, Any]:
    status = await ctx.services.charging.authorize(payload["idTag"])
    ctx.log.info("ocpp.authorize.answered", status=status.value)
    return {"idTagInfo": {"status": _ID_TAG_STATUS[status]}}


async def on_start_transaction(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    outcome = await ctx.services.charging.start_transaction_16(
        ctx.link.station_id,
        connector_id=payload["connectorId"],
        id_tag=payload["idTag"],
        meter_start=payload["meterStart"],
        timestamp=parse_timestamp(payload["timestamp"]),
        received=ctx.received(payload),
    )
    return {
        "transactionId": outcome.transaction_id,
        "idTagInfo": {"status": _ID_TAG_STATUS[outcome.status]},
    }


async def on_meter_values(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    await ctx.services.charging.meter_values_16(
        ctx.link.station_id,
        transaction_id=payload.get("transactionId"),
        meter_values=payload["meterValue"],
        received=ctx.received(payload),
    )
    return {}


async def on_stop_transaction(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    # Acknowledged whatever it says (a repeat, an unknown transaction): a
    # station discards a stop it cannot deliver, and the charge with it.
    status = await ctx.services.charging.stop_transaction_16(
        ctx.link.station_id,
        transaction_id=payload["transactionId"],
        meter_stop=payload["meterStop"],
        timestamp=parse_timestamp(payload["timestamp"]),
        reason=payload.get("reason"),
        id_tag=payload.get("idTag"),
        transaction_data=payload.get("transactionData"),
        received=ctx.received(payload),
    )
    if status is None:
        return {}
    return {"idTagInfo": {"status": _ID_TAG_STATUS[status]}}


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
    "Authorize": on_authorize,
    "StartTransaction": on_start_transaction,
    "MeterValues": on_meter_values,
    "StopTransaction": on_stop_transaction,
    # The 1.6 security extension's notification has the 2.0.1 shape.
    "SecurityEventNotification": v201.on_security_event,
    "DataTransfer": on_data_transfer,
    "DiagnosticsStatusNotification": acknowledge,
    "FirmwareStatusNotification": acknowledge,
}
