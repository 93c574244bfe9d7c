"""Payload validation cost: the `ocpp` package's jsonschema path against ours.

Run from the project root::

    .venv/bin/python benchmarks/bench_validation.py

For each message it prints microseconds per call of

- `ocpp.messages._validate_payload` (jsonschema Draft4Validator, synchronous),
- `ocpp.messages.validate_payload` as the package's ChargePoint awaits it (the
  same check sent to the default thread pool),
- our compiled `PayloadValidator.validate_request`,
- our whole inbound step: parse the CALL text, validate it, encode a CALLRESULT.

Each figure is the best of several timed loops, to keep scheduler noise out.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import sampled_values_16
from ocpp import messages as ocpp_messages

from csms.ocpp.framing import Call, OcppVersion, encode_call, encode_result, parse_frame
from csms.ocpp.validation import get_validator

ITERATIONS = 3000
ASYNC_ITERATIONS = 1000
REPEATS = 3
TIMESTAMP = "2026-12-03T10:00:00Z"

# The `ocpp` package names versions without the subprotocol prefix.
PACKAGE_VERSIONS = {OcppVersion.V16: "1.6", OcppVersion.V201: "2.0.1"}


@dataclass(frozen=True)
class Case:
    version: OcppVersion
    action: str
    payload: dict[str, Any]
    response: dict[str, Any]


CASES = [
    Case(OcppVersion.V16, "Heartbeat", {}, {"currentTime": TIMESTAMP}),
    Case(OcppVersion.V201, "Heartbeat", {}, {"currentTime": TIMESTAMP}),
    Case(
        OcppVersion.V16,
        "Authorize",
        {"idTag": "04E8D2A1B3C4"},
        {"idTagInfo": {"status": "Accepted"}},
    ),
    Case(
        OcppVersion.V201,
        "Authorize",
        {"idToken": {"idToken": "04E8D2A1B3C4", "type": "ISO14443"}},
        {"idTokenInfo": {"status": "Accepted"}},
    ),
    Case(
        OcppVersion.V16,
        "BootNotification",
        {
            "chargePointVendor": "Acme",
            "chargePointModel": "Wall-22",
            "chargePointSerialNumber": "ACM-000123",
            "firmwareVersion": "1.4.2",
        },
        {"status": "Accepted", "currentTime": TIMESTAMP, "interval": 300},
    ),
    Case(
        OcppVersion.V201,
        "BootNotification",
        {
            "reason": "PowerUp",
            "chargingStation": {
                "vendorName": "Acme",
                "model": "Wall-22",
                "serialNumber": "ACM-000123",
                "firmwareVersion": "1.4.2",
            },
        },
        {"status": "Accepted", "currentTime": TIMESTAMP, "interval": 300},
    ),
    Case(
        OcppVersion.V16,
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 42,
            "meterValue": [
                {"timestamp": TIMESTAMP, "sampledValue": sampled_values_16("12345.6")}
            ],
        },
        {},
    ),
    Case(
        OcppVersion.V201,
        "TransactionEvent",
        {
            "eventType": "Updated",
            "timestamp": TIMESTAMP,
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 12,
            "transactionInfo": {
                "transactionId": "6c3f1d2e-0b7a-4f0e-9d3b-5a1e2c4b7f90",
                "chargingState": "Charging",
            },
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "04E8D2A1B3C4", "type": "ISO14443"},
            "meterValue": [
                {
                    "timestamp": TIMESTAMP,
                    "sampledValue": [
                        {
                            "value": 12345.6,
                            "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "Wh"},
                        },
                        {"value": 11040, "measurand": "Power.Active.Import"},
                        {"value": 16.0, "measurand": "Current.Import", "phase": "L1"},
                        {"value": 54, "measurand": "SoC"},
                    ],
                }
            ],
        },
        {"idTokenInfo": {"status": "Accepted"}},
    ),
]


def best_microseconds(operation: Callable[[], object], iterations: int) -> float:
    """The fastest of REPEATS timed loops, in microseconds per operation."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(iterations):
            operation()
        best = min(best, time.perf_counter() - started)
    return best / iterations * 1e6


async def best_microseconds_async(call: ocpp_messages.Call, version: str) -> float:
    """Like `best_microseconds`, for the package's awaited thread-pool validation."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(ASYNC_ITERATIONS):
            await ocpp_messages.validate_payload(call, version)
        best = min(best, time.perf_counter() - started)
    return best / ASYNC_ITERATIONS * 1e6


def measure(case: Case) -> tuple[float, float, float, float]:
    """Microseconds for: package sync, package awaited, ours, our round trip."""
    package_version = PACKAGE_VERSIONS[case.version]
    package_call = ocpp_messages.Call("m-1", case.action, case.payload)
    validator = get_validator(case.version)
    raw_call = encode_call("m-1", case.action, case.payload)

    def validate_with_package() -> None:
        ocpp_messages._validate_payload(package_call, package_version)

    def validate_with_ours() -> None:
        validator.validate_request(case.action, case.payload)

    def round_trip() -> str:
        frame = parse_frame(raw_call)
        if not isinstance(frame, Call):
            raise TypeError("expected a CALL")
        validator.validate_request(frame.action, frame.payload)
        return encode_result(frame.message_id, case.response)

    # Warm both caches and prove the payload is valid for both validators.
    validate_with_package()
    validate_with_ours()
    validator.validate_response(case.action, case.response)

    return (
        best_microseconds(validate_with_package, ITERATIONS),
        asyncio.run(best_microseconds_async(package_call, package_version)),
        best_microseconds(validate_with_ours, ITERATIONS),
        best_microseconds(round_trip, ITERATIONS),
    )


def cpu_model() -> str:
    """The processor's marketing name on Linux, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    print(f"machine: {platform.platform()}")
    print(f"cpu_count: {os.cpu_count()}, python {platform.python_version()}")
    print(f"cpu: {cpu_model()}")
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("ocpp", "jsonschema", "fastjsonschema", "orjson")
    )
    print(versions)
    print(f"best of {REPEATS} loops, {ITERATIONS} iterations each (µs per message)")
    print()
    header = (
        f"{'message':<28}{'ocpp sync':>11}{'ocpp await':>12}"
        f"{'ours':>9}{'speed-up':>10}{'ours round trip':>17}"
    )
    print(header)
    print("-" * len(header))
    for case in CASES:
        package_sync, package_awaited, ours, trip = measure(case)
        label = f"{case.version.value} {case.action}"
        print(
            f"{label:<28}{package_sync:>11.1f}{package_awaited:>12.1f}"
            f"{ours:>9.2f}{package_sync / ours:>9.0f}x{trip:>17.2f}"
        )


if __name__ == "__main__":
    main()
