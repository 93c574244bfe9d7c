from decimal import Decimal

import orjson
import pytest

from csms.ocpp.framing import (
    Call,
    CallError,
    CallResult,
    ErrorKind,
    FrameError,
    OcppVersion,
    encode_call,
    encode_error,
    encode_result,
    error_code,
    parse_frame,
)


def _parse_error(data: str) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse_frame(data)
    return caught.value


def test_call_is_parsed_with_id_action_and_payload() -> None:
    frame = parse_frame('[2,"19223201","BootNotification",{"chargePointVendor":"X"}]')

    assert frame == Call("19223201", "BootNotification", {"chargePointVendor": "X"})


def test_call_result_is_parsed_with_id_and_payload() -> None:
    frame = parse_frame('[3,"19223201",{"status":"Accepted"}]')

    assert frame == CallResult("19223201", {"status": "Accepted"})


def test_call_error_is_parsed_with_code_description_and_details() -> None:
    frame = parse_frame('[4,"19223201","GenericError","went wrong",{"why":"x"}]')

    assert frame == CallError("19223201", "GenericError", "went wrong", {"why": "x"})


def test_bytes_are_parsed_like_text() -> None:
    frame = parse_frame(b'[2,"1","Heartbeat",{}]')

    assert frame == Call("1", "Heartbeat", {})


def test_invalid_json_is_an_rpc_framework_error_without_id() -> None:
    error = _parse_error('[2,"1","Heartbeat",{')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "-1")


def test_json_object_instead_of_array_is_an_rpc_framework_error() -> None:
    error = _parse_error('{"messageId":"1"}')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "-1")


def test_empty_array_is_an_rpc_framework_error() -> None:
    error = _parse_error("[]")

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "-1")


def test_call_with_missing_payload_is_an_rpc_framework_error_with_its_id() -> None:
    error = _parse_error('[2,"abc","Heartbeat"]')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "abc")


def test_call_result_with_extra_element_is_an_rpc_framework_error() -> None:
    error = _parse_error('[3,"abc",{},{}]')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "abc")


def test_numeric_message_id_is_an_rpc_framework_error_without_id() -> None:
    error = _parse_error('[2,42,"Heartbeat",{}]')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "-1")


def test_message_id_longer_than_36_characters_is_refused() -> None:
    error = _parse_error(f'[2,"{"a" * 37}","Heartbeat",{{}}]')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "-1")


def test_message_id_of_exactly_36_characters_is_accepted() -> None:
    frame = parse_frame(f'[2,"{"a" * 36}","Heartbeat",{{}}]')

    assert frame.message_id == "a" * 36


def test_unknown_message_type_is_not_supported_and_keeps_the_id() -> None:
    error = _parse_error('[5,"abc","Heartbeat",{}]')

    assert (error.kind, error.message_id) == (
        ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED,
        "abc",
    )


def test_unknown_message_type_with_unreadable_id_answers_minus_one() -> None:
    error = _parse_error("[9]")

    assert (error.kind, error.message_id) == (
        ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED,
        "-1",
    )


def test_message_type_as_string_is_an_rpc_framework_error() -> None:
    error = _parse_error('["2","abc","Heartbeat",{}]')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "abc")


def test_message_type_as_boolean_is_an_rpc_framework_error() -> None:
    error = _parse_error('[true,"abc","Heartbeat",{}]')

    assert error.kind is ErrorKind.RPC_FRAMEWORK_ERROR


def test_call_payload_that_is_not_an_object_is_a_format_violation() -> None:
    error = _parse_error('[2,"abc","Heartbeat",[]]')

    assert (error.kind, error.message_id) == (ErrorKind.FORMAT_VIOLATION, "abc")


def test_call_result_payload_that_is_not_an_object_is_a_format_violation() -> None:
    error = _parse_error('[3,"abc","Accepted"]')

    assert (error.kind, error.message_id) == (ErrorKind.FORMAT_VIOLATION, "abc")


def test_call_action_that_is_not_a_string_is_an_rpc_framework_error() -> None:
    error = _parse_error('[2,"abc",7,{}]')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "abc")


def test_call_error_code_that_is_not_a_string_is_an_rpc_framework_error() -> None:
    error = _parse_error('[4,"abc",1,"",{}]')

    assert (error.kind, error.message_id) == (ErrorKind.RPC_FRAMEWORK_ERROR, "abc")


def test_frame_error_description_does_not_repeat_the_frame() -> None:
    error = _parse_error('[2,"abc","Authorize",{"idTag":"SECRET-TAG"]')

    assert "SECRET-TAG" not in error.description


def test_encoded_call_parses_back_to_the_same_call() -> None:
    text = encode_call("m-1", "Authorize", {"idTag": "04E8D2"})

    assert parse_frame(text) == Call("m-1", "Authorize", {"idTag": "04E8D2"})


def test_encoded_result_parses_back_to_the_same_result() -> None:
    text = encode_result("m-1", {"idTagInfo": {"status": "Accepted"}})

    assert parse_frame(text) == CallResult("m-1", {"idTagInfo": {"status": "Accepted"}})


def test_encoded_error_parses_back_to_the_same_error() -> None:
    text = encode_error("m-1", "NotImplemented", "no handler", {"action": "Foo"})

    assert parse_frame(text) == CallError(
        "m-1", "NotImplemented", "no handler", {"action": "Foo"}
    )


def test_encoded_call_is_compact_json() -> None:
    text = encode_call("m-1", "Heartbeat", {})

    assert text == '[2,"m-1","Heartbeat",{}]'


def test_encoded_error_without_details_carries_an_empty_object() -> None:
    text = encode_error("m-1", "InternalError")

    assert text == '[4,"m-1","InternalError","",{}]'


def test_encoded_error_description_is_cut_to_255_characters() -> None:
    text = encode_error("m-1", "GenericError", "x" * 300)

    assert orjson.loads(text)[3] == "x" * 255


def test_decimal_is_encoded_as_its_number_without_rounding() -> None:
    text = encode_result("m-1", {"limit": Decimal("21.45")})

    assert text == '[3,"m-1",{"limit":21.45}]'


def test_unencodable_payload_value_raises_type_error() -> None:
    with pytest.raises(TypeError):
        encode_result("m-1", {"when": object()})


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ErrorKind.FORMAT_VIOLATION, "FormationViolation"),
        (ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION, "OccurenceConstraintViolation"),
        (ErrorKind.NOT_IMPLEMENTED, "NotImplemented"),
        (ErrorKind.RPC_FRAMEWORK_ERROR, "FormationViolation"),
        (ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED, "FormationViolation"),
    ],
)
def test_error_code_uses_the_ocpp16_spelling(kind: ErrorKind, code: str) -> None:
    assert error_code(kind, OcppVersion.V16) == code


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ErrorKind.FORMAT_VIOLATION, "FormatViolation"),
        (ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION, "OccurrenceConstraintViolation"),
        (ErrorKind.NOT_IMPLEMENTED, "NotImplemented"),
        (ErrorKind.RPC_FRAMEWORK_ERROR, "RpcFrameworkError"),
        (ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED, "MessageTypeNotSupported"),
    ],
)
def test_error_code_uses_the_ocpp201_spelling(kind: ErrorKind, code: str) -> None:
    assert error_code(kind, OcppVersion.V201) == code


def test_every_error_kind_has_a_code_in_every_version() -> None:
    codes = {
        (kind, version): error_code(kind, version)
        for kind in ErrorKind
        for version in OcppVersion
    }

    assert all(codes.values())


_V16_CODES = {
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
}


def test_ocpp16_codes_are_only_those_the_16_specification_defines() -> None:
    used = {error_code(kind, OcppVersion.V16) for kind in ErrorKind}

    assert used <= _V16_CODES
