from typing import Any

import pytest

from csms.ocpp.framing import ErrorKind, OcppVersion
from csms.ocpp.validation import (
    PayloadValidator,
    SchemaViolation,
    UnknownAction,
    get_validator,
)

V16 = OcppVersion.V16
V201 = OcppVersion.V201
TIMESTAMP = "2026-12-03T10:00:00Z"
SECRET_TOKEN = "SECRET-TOKEN-0001"

VALID_REQUESTS: list[tuple[OcppVersion, str, dict[str, Any]]] = [
    (V16, "Heartbeat", {}),
    (V16, "Authorize", {"idTag": "04E8D2A1"}),
    (
        V16,
        "BootNotification",
        {"chargePointVendor": "Acme", "chargePointModel": "Wall-22"},
    ),
    (
        V16,
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    ),
    (
        V16,
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 7,
            "meterValue": [
                {
                    "timestamp": TIMESTAMP,
                    "sampledValue": [
                        {
                            "value": "1234.5",
                            "measurand": "Energy.Active.Import.Register",
                        },
                        {
                            "value": "7200",
                            "measurand": "Power.Active.Import",
                            "unit": "W",
                        },
                    ],
                }
            ],
        },
    ),
    (V201, "Heartbeat", {}),
    (V201, "Authorize", {"idToken": {"idToken": "04E8D2A1", "type": "ISO14443"}}),
    (
        V201,
        "BootNotification",
        {
            "reason": "PowerUp",
            "chargingStation": {"vendorName": "Acme", "model": "Wall-22"},
        },
    ),
    (
        V201,
        "StatusNotification",
        {
            "timestamp": TIMESTAMP,
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        },
    ),
    (
        V201,
        "MeterValues",
        {
            "evseId": 1,
            "meterValue": [
                {
                    "timestamp": TIMESTAMP,
                    "sampledValue": [
                        {"value": 1234.5, "measurand": "Energy.Active.Import.Register"}
                    ],
                }
            ],
        },
    ),
]


def _accepts_request(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> bool:
    try:
        get_validator(version).validate_request(action, payload)
    except SchemaViolation:
        return False
    return True


def _accepts_response(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> bool:
    try:
        get_validator(version).validate_response(action, payload)
    except SchemaViolation:
        return False
    return True


def _violation(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as caught:
        get_validator(version).validate_request(action, payload)
    return caught.value


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    VALID_REQUESTS,
    ids=[f"{version}-{action}" for version, action, _ in VALID_REQUESTS],
)
def test_valid_request_is_accepted(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> None:
    assert _accepts_request(version, action, payload)


def test_valid_request_is_left_unchanged_by_validation() -> None:
    payload: dict[str, Any] = {
        "evseId": 1,
        "meterValue": [{"timestamp": TIMESTAMP, "sampledValue": [{"value": 1.0}]}],
    }

    assert _accepts_request(V201, "MeterValues", payload)
    # The schema has defaults (e.g. context) that must not be written in.
    assert payload["meterValue"][0]["sampledValue"][0] == {"value": 1.0}


def test_valid_response_is_accepted() -> None:
    assert _accepts_response(
        V16,
        "BootNotification",
        {"status": "Accepted", "currentTime": TIMESTAMP, "interval": 300},
    )


def test_invalid_response_is_refused() -> None:
    assert not _accepts_response(V201, "Heartbeat", {})


@pytest.mark.parametrize(
    ("version", "payload"),
    [(V16, {}), (V201, {"idToken": {"type": "ISO14443"}})],
)
def test_missing_required_field_is_an_occurrence_violation(
    version: OcppVersion, payload: dict[str, Any]
) -> None:
    assert (
        _violation(version, "Authorize", payload).kind
        is ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION
    )


def test_missing_required_field_is_named_in_the_description() -> None:
    assert "idTag" in _violation(V16, "Authorize", {}).description


@pytest.mark.parametrize(
    ("version", "payload"),
    [
        (V16, {"idTag": 12345}),
        (V201, {"idToken": {"idToken": 12345, "type": "ISO14443"}}),
    ],
)
def test_wrong_type_is_a_type_constraint_violation(
    version: OcppVersion, payload: dict[str, Any]
) -> None:
    assert (
        _violation(version, "Authorize", payload).kind
        is ErrorKind.TYPE_CONSTRAINT_VIOLATION
    )


@pytest.mark.parametrize(
    ("version", "payload"),
    [
        (V16, {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"}),
        (
            V201,
            {
                "timestamp": TIMESTAMP,
                "connectorStatus": "Sleeping",
                "evseId": 1,
                "connectorId": 1,
            },
        ),
    ],
)
def test_unknown_enum_value_is_a_property_constraint_violation(
    version: OcppVersion, payload: dict[str, Any]
) -> None:
    assert (
        _violation(version, "StatusNotification", payload).kind
        is ErrorKind.PROPERTY_CONSTRAINT_VIOLATION
    )


@pytest.mark.parametrize(
    ("version", "payload"),
    [
        (V16, {"idTag": "04E8D2A1", "colour": "red"}),
        (V201, {"idToken": {"idToken": "04E8D2A1", "type": "ISO14443"}, "x": 1}),
    ],
)
def test_extra_property_is_a_format_violation(
    version: OcppVersion, payload: dict[str, Any]
) -> None:
    assert _violation(version, "Authorize", payload).kind is ErrorKind.FORMAT_VIOLATION


def test_extra_property_is_named_in_the_description() -> None:
    violation = _violation(V16, "Authorize", {"idTag": "04E8D2A1", "colour": "red"})

    assert "colour" in violation.description


def test_too_long_string_is_a_property_constraint_violation() -> None:
    violation = _violation(V16, "Authorize", {"idTag": "X" * 21})

    assert violation.kind is ErrorKind.PROPERTY_CONSTRAINT_VIOLATION


def test_description_names_the_field_but_not_its_value() -> None:
    violation = _violation(V16, "Authorize", {"idTag": SECRET_TOKEN + "-TOO-LONG"})

    assert "idTag" in violation.description
    assert SECRET_TOKEN not in violation.description


def test_enum_violation_description_does_not_echo_the_value() -> None:
    payload = {"idToken": {"idToken": "04E8D2A1", "type": SECRET_TOKEN}}

    assert SECRET_TOKEN not in _violation(V201, "Authorize", payload).description


def test_type_violation_description_does_not_echo_the_value() -> None:
    payload = {"idTag": [SECRET_TOKEN]}

    assert SECRET_TOKEN not in _violation(V16, "Authorize", payload).description


def test_empty_array_below_min_items_is_an_occurrence_violation() -> None:
    violation = _violation(V16, "MeterValues", {"connectorId": 1, "meterValue": []})

    assert violation.kind is ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION


@pytest.mark.parametrize(
    "timestamp", ["2026-12-03T10:00:00Z", "2026-12-03T10:00:00.123+01:00"]
)
def test_iso_timestamp_with_offset_is_accepted(timestamp: str) -> None:
    assert _accepts_response(V201, "Heartbeat", {"currentTime": timestamp})


def test_timestamp_that_is_not_a_date_time_is_a_property_violation() -> None:
    with pytest.raises(SchemaViolation) as caught:
        get_validator(V201).validate_response("Heartbeat", {"currentTime": "yesterday"})

    assert caught.value.kind is ErrorKind.PROPERTY_CONSTRAINT_VIOLATION


def _charging_profile(limit: float) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        },
    }


@pytest.mark.parametrize("limit", [21.4, 0.3, 100.1, 16])
def test_limit_with_one_decimal_passes_multiple_of_tenth(limit: float) -> None:
    assert _accepts_request(V16, "SetChargingProfile", _charging_profile(limit))


def test_limit_with_two_decimals_fails_multiple_of_tenth() -> None:
    violation = _violation(V16, "SetChargingProfile", _charging_profile(4.11))

    assert violation.kind is ErrorKind.PROPERTY_CONSTRAINT_VIOLATION


def test_unknown_action_raises_unknown_action() -> None:
    with pytest.raises(UnknownAction) as caught:
        get_validator(V16).validate_request("MakeCoffee", {})

    assert caught.value.action == "MakeCoffee"


def test_response_for_unknown_action_raises_unknown_action() -> None:
    with pytest.raises(UnknownAction):
        get_validator(V201).validate_response("MakeCoffee", {})


def test_action_of_the_other_version_is_unknown() -> None:
    with pytest.raises(UnknownAction):
        get_validator(V16).validate_request("TransactionEvent", {})


def test_path_like_action_is_unknown() -> None:
    with pytest.raises(UnknownAction):
        get_validator(V16).validate_request("../v201/schemas/HeartbeatRequest", {})


@pytest.mark.parametrize(
    ("version", "action", "known"),
    [
        (V16, "StartTransaction", True),
        (V16, "TransactionEvent", False),
        (V16, "StartTransactionResponse", False),
        (V201, "TransactionEvent", True),
        (V201, "StartTransaction", False),
        (V201, "HeartbeatRequest", False),
    ],
)
def test_knows_only_request_actions_of_its_version(
    version: OcppVersion, action: str, known: bool
) -> None:
    assert get_validator(version).knows(action) is known


def test_get_validator_returns_one_shared_instance_per_version() -> None:
    assert get_validator(V16) is get_validator(V16)
    assert get_validator(V16) is not get_validator(V201)


def test_a_new_validator_applies_its_own_version() -> None:
    assert PayloadValidator(V201).version is V201
