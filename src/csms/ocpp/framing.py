"""OCPP-J message framing: text in, frames out, and back. No I/O happens here.

An OCPP-J message is a JSON array whose first element says what it is::

    [2, "<messageId>", "<action>", {payload}]           CALL
    [3, "<messageId>", {payload}]                       CALLRESULT
    [4, "<messageId>", "<code>", "<description>", {}]   CALLERROR

`parse_frame` turns a received text into a `Call`, `CallResult` or `CallError`, or
raises `FrameError` saying which CALLERROR the sender deserves. The `encode_*`
functions build the compact JSON text to send.

Errors are named by a version-neutral `ErrorKind`; `error_code` gives the string that
goes on the wire for a protocol version, because OCPP 1.6 and 2.0.1 spell some codes
differently and 1.6 lacks a few.

Exceptions::

    FrameError   the text is not an OCPP-J frame (bad JSON, wrong shape, bad id)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Any, Final

import orjson

# OCPP-J 1.6 section 4.1.4 and OCPP 2.0.1 part 4 section 4.1.4: at most 36 characters.
MAX_MESSAGE_ID_LENGTH: Final = 36

# OCPP 2.0.1 part 4 section 4.2.3: ErrorDescription is at most 255 characters.
MAX_ERROR_DESCRIPTION_LENGTH: Final = 255

# The message id to answer with when the frame's own id cannot be read
# (OCPP 2.0.1 part 4 section 4.2.3).
UNKNOWN_MESSAGE_ID: Final = "-1"


class OcppVersion(StrEnum):
    """A protocol version, spelled as the WebSocket subprotocol that selects it."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"


class MessageType(IntEnum):
    """The message type number, the first element of every OCPP-J frame."""

    CALL = 2
    CALL_RESULT = 3
    CALL_ERROR = 4


class ErrorKind(Enum):
    """Why a message was refused, independent of the version's spelling of it."""

    FORMAT_VIOLATION = "format_violation"
    PROTOCOL_ERROR = "protocol_error"
    PROPERTY_CONSTRAINT_VIOLATION = "property_constraint_violation"
    OCCURRENCE_CONSTRAINT_VIOLATION = "occurrence_constraint_violation"
    TYPE_CONSTRAINT_VIOLATION = "type_constraint_violation"
    NOT_IMPLEMENTED = "not_implemented"
    NOT_SUPPORTED = "not_supported"
    INTERNAL_ERROR = "internal_error"
    SECURITY_ERROR = "security_error"
    GENERIC_ERROR = "generic_error"
    RPC_FRAMEWORK_ERROR = "rpc_framework_error"
    MESSAGE_TYPE_NOT_SUPPORTED = "message_type_not_supported"


# OCPP-J 1.6 section 4.2.3. The spelling "FormationViolation" and "Occurence" is the
# specification's own and stations expect it. 1.6 has no code for an unreadable RPC
# frame nor for an unknown message type; both mean the frame does not "conform the PDU
# structure", which is how 1.6 defines FormationViolation, so both map to it.
_V16_CODES: Final[Mapping[ErrorKind, str]] = {
    ErrorKind.FORMAT_VIOLATION: "FormationViolation",
    ErrorKind.PROTOCOL_ERROR: "ProtocolError",
    ErrorKind.PROPERTY_CONSTRAINT_VIOLATION: "PropertyConstraintViolation",
    ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    ErrorKind.TYPE_CONSTRAINT_VIOLATION: "TypeConstraintViolation",
    ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
    ErrorKind.NOT_SUPPORTED: "NotSupported",
    ErrorKind.INTERNAL_ERROR: "InternalError",
    ErrorKind.SECURITY_ERROR: "SecurityError",
    ErrorKind.GENERIC_ERROR: "GenericError",
    ErrorKind.RPC_FRAMEWORK_ERROR: "FormationViolation",
    ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED: "FormationViolation",
}

# OCPP 2.0.1 part 4 section 4.3: every kind has its own code.
_V201_CODES: Final[Mapping[ErrorKind, str]] = {
    ErrorKind.FORMAT_VIOLATION: "FormatViolation",
    ErrorKind.PROTOCOL_ERROR: "ProtocolError",
    ErrorKind.PROPERTY_CONSTRAINT_VIOLATION: "PropertyConstraintViolation",
    ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurrenceConstraintViolation",
    ErrorKind.TYPE_CONSTRAINT_VIOLATION: "TypeConstraintViolation",
    ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
    ErrorKind.NOT_SUPPORTED: "NotSupported",
    ErrorKind.INTERNAL_ERROR: "InternalError",
    ErrorKind.SECURITY_ERROR: "SecurityError",
    ErrorKind.GENERIC_ERROR: "GenericError",
    ErrorKind.RPC_FRAMEWORK_ERROR: "RpcFrameworkError",
    ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED: "MessageTypeNotSupported",
}

_CODES_BY_VERSION: Final[Mapping[OcppVersion, Mapping[ErrorKind, str]]] = {
    OcppVersion.V16: _V16_CODES,
    OcppVersion.V201: _V201_CODES,
}

# Number of elements in a well-formed frame of each type.
_FRAME_LENGTHS: Final[Mapping[MessageType, int]] = {
    MessageType.CALL: 4,
    MessageType.CALL_RESULT: 3,
    MessageType.CALL_ERROR: 5,
}


@dataclass(frozen=True, slots=True)
class Call:
    """A request: the sender asks the receiver to perform `action`."""

    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    """A successful answer to the `Call` with the same `message_id`."""

    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    """A failed answer to the `Call` with the same `message_id`; `code` is verbatim."""

    message_id: str
    code: str
    description: str
    details: dict[str, Any]


Frame = Call | CallResult | CallError


class FrameError(Exception):
    """A frame that cannot be read as OCPP-J.

    `message_id` is the frame's id when it could be read, else "-1". `kind` is the
    error to answer with; `description` says what is wrong without repeating the frame.
    """

    message_id: str
    kind: ErrorKind
    description: str

    def __init__(
        self,
        kind: ErrorKind,
        description: str,
        *,
        message_id: str = UNKNOWN_MESSAGE_ID,
    ) -> None:
        super().__init__(description)
        self.message_id = message_id
        self.kind = kind
        self.description = description


def error_code(kind: ErrorKind, version: OcppVersion) -> str:
    """The CALLERROR code that `version` uses on the wire for `kind`."""
    return _CODES_BY_VERSION[version][kind]


def parse_frame(data: str | bytes) -> Frame:
    """Read one received WebSocket message as an OCPP-J frame.

    Raises `FrameError` when the text is not JSON, not an array of the right length,
    has an unusable message id, an unknown message type, or elements of the wrong type.
    """
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK_ERROR, "frame is not valid JSON"
        ) from exc
    if not isinstance(decoded, list) or not decoded:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK_ERROR, "frame is not a non-empty JSON array"
        )

    # Read the id before judging the rest, so that every later error can be
    # correlated by the sender (OCPP 2.0.1 part 4 section 4.2.3).
    message_id = _read_message_id(decoded)
    answer_id = UNKNOWN_MESSAGE_ID if message_id is None else message_id

    # bool is an int subclass and 2.0 == 2; neither is a message type number.
    type_number = decoded[0]
    if type(type_number) is not int:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK_ERROR,
            "message type is not an integer",
            message_id=answer_id,
        )
    try:
        message_type = MessageType(type_number)
    except ValueError as exc:
        raise FrameError(
            ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED,
            f"message type {type_number} is not supported",
            message_id=answer_id,
        ) from exc

    if message_id is None:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK_ERROR,
            "message id is missing, not a string or longer than "
            f"{MAX_MESSAGE_ID_LENGTH} characters",
        )
    expected_length = _FRAME_LENGTHS[message_type]
    if len(decoded) != expected_length:
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK_ERROR,
            f"{message_type.name} frame has {len(decoded)} elements, "
            f"expected {expected_length}",
            message_id=message_id,
        )

    match message_type:
        case MessageType.CALL:
            return _build_call(message_id, decoded)
        case MessageType.CALL_RESULT:
            return CallResult(message_id, _require_object(message_id, decoded[2]))
        case MessageType.CALL_ERROR:
            return _build_call_error(message_id, decoded)


def encode_call(message_id: str, action: str, payload: Mapping[str, Any]) -> str:
    """The compact JSON text of a CALL."""
    return _dump([MessageType.CALL, message_id, action, _as_dict(payload)])


def encode_result(message_id: str, payload: Mapping[str, Any]) -> str:
    """The compact JSON text of a CALLRESULT."""
    return _dump([MessageType.CALL_RESULT, message_id, _as_dict(payload)])


def encode_error(
    message_id: str,
    code: str,
    description: str = "",
    details: Mapping[str, Any] | None = None,
) -> str:
    """The compact JSON text of a CALLERROR; `description` is cut to 255 characters."""
    return _dump(
        [
            MessageType.CALL_ERROR,
            message_id,
            code,
            description[:MAX_ERROR_DESCRIPTION_LENGTH],
            {} if details is None else _as_dict(details),
        ]
    )


def _read_message_id(decoded: list[Any]) -> str | None:
    if len(decoded) < 2:
        return None
    candidate = decoded[1]
    if not isinstance(candidate, str) or len(candidate) > MAX_MESSAGE_ID_LENGTH:
        return None
    return candidate


def _build_call(message_id: str, decoded: list[Any]) -> Call:
    action = decoded[2]
    if not isinstance(action, str):
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK_ERROR,
            "action is not a string",
            message_id=message_id,
        )
    return Call(message_id, action, _require_object(message_id, decoded[3]))


def _build_call_error(message_id: str, decoded: list[Any]) -> CallError:
    code, description, details = decoded[2], decoded[3], decoded[4]
    if not isinstance(code, str) or not isinstance(description, str):
        raise FrameError(
            ErrorKind.RPC_FRAMEWORK_ERROR,
            "error code or description is not a string",
            message_id=message_id,
        )
    return CallError(
        message_id, code, description, _require_object(message_id, details)
    )


def _require_object(message_id: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameError(
            ErrorKind.FORMAT_VIOLATION,
            "payload is not a JSON object",
            message_id=message_id,
        )
    return value


def _as_dict(payload: Mapping[str, Any]) -> dict[str, Any]:
    # orjson serialises dict but not other Mapping types.
    return payload if isinstance(payload, dict) else dict(payload)


def _dump(frame: list[Any]) -> str:
    return orjson.dumps(frame, default=_encode_unknown).decode()


def _encode_unknown(value: object) -> object:
    # Decimal goes out as the nearest float: "21.4" stays 21.4, nothing is rounded
    # to a fixed number of digits.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
