"""OCPP 2.0.1: what the CSMS does with each action a station sends.

The routing table at the bottom is the whole of what 2.0.1 stations can ask.
"""

from __future__ import annotations

from typing import Any

from csms.ocpp.context import HandlerContext, Routes, format_time
from csms.stations.service import BootInfo


async def on_boot_notification(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    # B01.FR.01: a registered station that passed authentication is Accepted.
    station = payload["chargingStation"]
    outcome = await ctx.services.stations.accept_boot(
        ctx.link.station_id,
        BootInfo(
            vendor=station["vendorName"],
            model=station["model"],
            serial_number=station.get("serialNumber"),
            firmware_version=station.get("firmwareVersion"),
        ),
        epoch=ctx.link.epoch,
    )
    ctx.link.booted = True
    ctx.link.state = outcome.state
    ctx.log.info(
        "ocpp.boot.accepted", reason=payload.get("reason"), state=outcome.state.value
    )
    return {
        "currentTime": format_time(ctx.services.clock.now()),
        "interval": ctx.services.heartbeat_interval,
        "status": "Accepted",
    }


async def on_heartbeat(ctx: HandlerContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": format_time(ctx.services.clock.now())}


async def on_status_notification(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    outcome = await ctx.services.stations.update_connector(
        ctx.link.station_id,
        evse_id=payload["evseId"],
        connector_id=payload["connectorId"],
        status=payload["connectorStatus"],
        epoch=ctx.link.epoch,
    )
    ctx.link.state = outcome.state
    ctx.log.info(
        "ocpp.status.updated",
        evse_id=payload["evseId"],
        connector_id=payload["connectorId"],
        status=payload["connectorStatus"],
        state=outcome.state.value,
    )
    return {}


async def on_authorize(ctx: HandlerContext, payload: dict[str, Any]) -> dict[str, Any]:
    status = await ctx.services.charging.authorize(payload["idToken"]["idToken"])
    ctx.log.info("ocpp.authorize.answered", status=status.value)
    return {"idTokenInfo": {"status": status.value}}


async def on_transaction_event(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    status = await ctx.services.charging.transaction_event_201(
        ctx.link.station_id, payload, received=ctx.received(payload)
    )
    # idTokenInfo answers an event that carried an idToken (E03.FR.01, E05.FR.01).
    if status is None:
        return {}
    return {"idTokenInfo": {"status": status.value}}


async def on_meter_values(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    # Outside a transaction (2.0.1 MeterValues): nothing to bill, acknowledged.
    return {}


async def on_security_event(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    await ctx.services.stations.record_event(
        ctx.link.station_id,
        "station_security_event",
        security=True,
        details={
            "type": payload["type"],
            "timestamp": payload["timestamp"],
            "tech_info": payload.get("techInfo"),
        },
    )
    ctx.log.warning("ocpp.security_event.reported", type=payload["type"])
    return {}


async def on_data_transfer(
    ctx: HandlerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    return {"status": "UnknownVendorId"}


async def acknowledge(ctx: HandlerContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {}


ROUTES: Routes = {
    "BootNotification": on_boot_notification,
    "Heartbeat": on_heartbeat,
    "StatusNotification": on_status_notification,
    "SecurityEventNotification": on_security_event,
    "Authorize": on_authorize,
    "TransactionEvent": on_transaction_event,
    "MeterValues": on_meter_values,
    "DataTransfer": on_data_transfer,
    "FirmwareStatusNotification": acknowledge,
    "LogStatusNotification": acknowledge,
    "NotifyEvent": acknowledge,
    "NotifyReport": acknowledge,
}
