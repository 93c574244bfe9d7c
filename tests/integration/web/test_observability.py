"""/metrics in Prometheus text format and /readyz, on a running CSMS."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from csms.app import Csms
from csms.db.engine import create_engine, create_sessionmaker
from csms.observability.health import Readiness
from csms.settings import Settings
from csms.simulator.station import V201, run_station

from conftest import RegisteredStation
from support.charging import (
    FAST,
    start_charge,
    wait_for_session,
    wait_for_station_state,
)
from support.customers import register_customer
from support.frames import raw_station, send_call
from support.stations import basic_auth, open_socket

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def _metrics(http: httpx.AsyncClient) -> Samples:
    answer = await http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_after_a_boot_count_the_station_and_its_calls(
    ocpp_url: str, station: RegisteredStation, anonymous_http: httpx.AsyncClient
) -> None:
    async with run_station(
        ocpp_url, station.station_id, station.password, version=V201
    ):
        samples = await _metrics(anonymous_http)

    assert _value(samples, "csms_connected_stations", ocpp_version="ocpp2.0.1") == 1
    assert _value(samples, "csms_connected_stations", ocpp_version="ocpp1.6") == 0
    assert _value(samples, "csms_stations", state="Available") == 1
    assert _value(samples, "csms_stations", state="Unavailable") == 0
    assert (
        _value(
            samples,
            "csms_ocpp_calls_total",
            action="BootNotification",
            outcome="result",
        )
        == 1
    )
    assert (
        _value(
            samples,
            "csms_ocpp_call_duration_seconds_count",
            action="BootNotification",
        )
        == 1
    )
    assert _value(samples, "csms_open_charges") == 0


async def test_a_callerror_is_counted_by_its_code(
    ocpp_url: str, station: RegisteredStation, anonymous_http: httpx.AsyncClient
) -> None:
    async with raw_station(ocpp_url, station.station_id, station.password) as socket:
        answer = await send_call(socket, "Heartbeat", {})
        samples = await _metrics(anonymous_http)

    assert answer[0] == 4
    assert (
        _value(
            samples,
            "csms_ocpp_calls_total",
            action="Heartbeat",
            outcome=answer[2],
        )
        == 1
    )


async def test_a_charge_shows_as_open_then_as_written_records(
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    customer = await register_customer(anonymous_http)
    car_id = await customer.add_car()

    async with run_station(
        ocpp_url, station.station_id, station.password, options=FAST
    ):
        record = await start_charge(
            customer, car_id=car_id, station_id=station.station_id
        )
        await wait_for_session(customer, record["id"], state="Started")
        # The connector's Charging status comes after the transaction's start.
        await wait_for_station_state(operator_http, station.station_id, "Charging")
        during = await _metrics(anonymous_http)
        await customer.post(f"/api/v1/charging-sessions/{record['id']}/stop")
        await wait_for_session(customer, record["id"], state="Finished")
        after = await _metrics(anonymous_http)

    assert _value(during, "csms_open_charges") == 1
    assert _value(during, "csms_stations", state="Charging") == 1
    assert _value(after, "csms_open_charges") == 0
    assert _value(after, "csms_charge_record_writes_total", state="Pending") == 1
    assert _value(after, "csms_charge_record_writes_total", state="Started") >= 1
    assert _value(after, "csms_charge_record_writes_total", state="Finished") == 1


async def test_refused_logins_are_counted_by_edge_and_reason(
    ocpp_url: str, station: RegisteredStation, anonymous_http: httpx.AsyncClient
) -> None:
    with pytest.raises(Exception, match="401"):
        await open_socket(
            f"{ocpp_url}/{station.station_id}",
            headers=basic_auth(station.station_id, "not-the-password-at-all"),
            subprotocols=["ocpp1.6"],
        )
    await anonymous_http.get(
        "/api/v1/operator/stations", headers={"Authorization": "Bearer nope"}
    )

    samples = await _metrics(anonymous_http)

    assert (
        _value(
            samples, "csms_auth_failures_total", edge="ocpp", reason="wrong_password"
        )
        == 1
    )
    assert (
        _value(
            samples,
            "csms_auth_failures_total",
            edge="api",
            reason="operator_token_invalid",
        )
        == 1
    )


async def test_a_call_the_station_could_not_answer_is_a_delivery_failure(
    ocpp_url: str,
    station: RegisteredStation,
    anonymous_http: httpx.AsyncClient,
    operator_http: httpx.AsyncClient,
) -> None:
    # The simulator implements no Reset: it answers with a CALLERROR.
    async with run_station(ocpp_url, station.station_id, station.password):
        await operator_http.post(
            f"/api/v1/operator/stations/{station.station_id}/reset", json={}
        )
        samples = await _metrics(anonymous_http)

    assert (
        _value(
            samples,
            "csms_station_call_failures_total",
            action="Reset",
            reason="call_error",
        )
        == 1
    )


async def test_a_running_csms_is_ready(
    csms: Csms, anonymous_http: httpx.AsyncClient
) -> None:
    answer = await anonymous_http.get("/readyz")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "ready",
        "checks": {"database": "ok", "gateway": "ok"},
    }


async def test_a_csms_whose_gateway_does_not_listen_is_not_ready(
    settings: Settings,
) -> None:
    csms = Csms(settings)
    try:
        transport = httpx.ASGITransport(app=csms.api)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://csms"
        ) as http:
            answer = await http.get("/readyz")
    finally:
        await csms.engine.dispose()

    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["checks"] == {"database": "ok", "gateway": "not started"}
    assert answer.json()["detail"] == "gateway: not started"


async def test_an_unreachable_database_is_not_ready() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    readiness = Readiness(create_sessionmaker(engine), gateway_started=lambda: True)
    try:
        checks = await readiness.check()
    finally:
        await engine.dispose()

    assert checks == {"database": "unreachable", "gateway": "ok"}
