"""Payload validation against the official OCPP JSON schemas, compiled to Python.

The schemas are the ones shipped inside the installed `ocpp` package; we read them from
there rather than keep a copy. Each is compiled with fastjsonschema the first time its
action is seen and kept for the life of the process: compiling all ~200 of them up
front would cost over a second at start-up for actions most stations never send.

Exceptions::

    UnknownAction     no schema exists for the action in this version
    SchemaViolation   the payload breaks its schema; `kind` is the OCPP error to answer

Notes on the schemas:

- fastjsonschema checks `multipleOf` (used by three 1.6 schemas with 0.1) on the
  decimal text of the number, so a float such as 21.4 passes and 4.11 fails as the
  schema intends.
- `format: date-time` is enforced (RFC 3339: a time offset or "Z" is required).
- Schema `default` values are never written into the payload being checked.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable, Mapping
from typing import Any, Final

import fastjsonschema
import orjson

from csms.ocpp.framing import ErrorKind, OcppVersion

_CompiledSchema = Callable[[Any], Any]

_SCHEMA_DIRECTORIES: Final[Mapping[OcppVersion, str]] = {
    OcppVersion.V16: "v16/schemas",
    OcppVersion.V201: "v201/schemas",
}

# 1.6 names request schemas after the bare action; 2.0.1 appends "Request".
_REQUEST_SUFFIXES: Final[Mapping[OcppVersion, str]] = {
    OcppVersion.V16: "",
    OcppVersion.V201: "Request",
}
_RESPONSE_SUFFIX: Final = "Response"

_SCHEMA_EXTENSION: Final = ".json"

# Which OCPP error a failed JSON-schema keyword stands for. Array cardinality is an
# occurrence constraint, the same as a missing required field. Keywords not listed
# here become FORMAT_VIOLATION.
_KINDS_BY_RULE: Final[Mapping[str, ErrorKind]] = {
    "type": ErrorKind.TYPE_CONSTRAINT_VIOLATION,
    "required": ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorKind.OCCURRENCE_CONSTRAINT_VIOLATION,
    "additionalProperties": ErrorKind.FORMAT_VIOLATION,
    "enum": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "const": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "maxLength": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "minLength": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "format": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMinimum": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMaximum": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
}

# fastjsonschema names the payload root "data" in its paths.
_ROOT_NAME: Final = "data"


# Named for what happened, like our domain errors (STYLE.md), not "...Error".
class SchemaViolation(Exception):
    """A payload that does not match its schema.

    `description` names the offending field and the rule it breaks but never the
    value, because values can be id tokens.
    """

    kind: ErrorKind
    description: str

    def __init__(self, kind: ErrorKind, description: str) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description


class UnknownAction(Exception):
    """No schema exists for `action` in the validator's OCPP version."""

    action: str

    def __init__(self, action: str) -> None:
        super().__init__(f"no schema for action {action!r}")
        self.action = action


class PayloadValidator:
    """Checks request and response payloads of one OCPP version against its schemas.

    Obtain the shared instance with `get_validator`; compiled schemas are cached on it.
    """

    def __init__(self, version: OcppVersion) -> None:
        self._version = version
        self._directory = importlib.resources.files("ocpp").joinpath(
            _SCHEMA_DIRECTORIES[version]
        )
        self._request_suffix = _REQUEST_SUFFIXES[version]

        # Listing the files once means an action read off the wire is only ever
        # looked up in this set, never turned into a path.
        self._request_actions = frozenset(self._list_request_actions())
        self._compiled: dict[str, _CompiledSchema] = {}

    @property
    def version(self) -> OcppVersion:
        """The OCPP version whose schemas this validator applies."""
        return self._version

    def knows(self, action: str) -> bool:
        """Whether a request schema exists for `action` in this version."""
        return action in self._request_actions

    def validate_request(self, action: str, payload: dict[str, Any]) -> None:
        """Check the payload of a CALL for `action`.

        Raises `UnknownAction` or `SchemaViolation`.
        """
        self._validate(action, action + self._request_suffix, payload)

    def validate_response(self, action: str, payload: dict[str, Any]) -> None:
        """Check the payload of a CALLRESULT answering a CALL for `action`.

        Raises `UnknownAction` or `SchemaViolation`.
        """
        self._validate(action, action + _RESPONSE_SUFFIX, payload)

    def _validate(self, action: str, schema_name: str, payload: dict[str, Any]) -> None:
        if action not in self._request_actions:
            raise UnknownAction(action)
        check = self._compiled.get(schema_name)
        if check is None:
            check = self._compile(schema_name)
        try:
            check(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise SchemaViolation(_kind_of(exc), _describe(exc)) from None

    def _compile(self, schema_name: str) -> _CompiledSchema:
        # 2.0.1 schema files begin with a UTF-8 byte order mark.
        text = self._directory.joinpath(schema_name + _SCHEMA_EXTENSION).read_text(
            encoding="utf-8-sig"
        )

        # use_default=False: fastjsonschema would otherwise write schema defaults
        # into the caller's payload while checking it.
        compiled: _CompiledSchema = fastjsonschema.compile(
            orjson.loads(text), use_default=False
        )

        # Two threads compiling the same schema at once both store an equal
        # function; the last write wins and nothing is lost.
        self._compiled[schema_name] = compiled
        return compiled

    def _list_request_actions(self) -> list[str]:
        actions = []
        for entry in self._directory.iterdir():
            stem = entry.name.removesuffix(_SCHEMA_EXTENSION)
            if stem == entry.name or stem.endswith(_RESPONSE_SUFFIX):
                continue
            if self._request_suffix and not stem.endswith(self._request_suffix):
                continue
            actions.append(stem.removesuffix(self._request_suffix))
        return actions


@functools.cache
def get_validator(version: OcppVersion) -> PayloadValidator:
    """The process-wide validator for `version`, created on first request."""
    return PayloadValidator(version)


def _kind_of(exc: fastjsonschema.JsonSchemaValueException) -> ErrorKind:
    return _KINDS_BY_RULE.get(str(exc.rule), ErrorKind.FORMAT_VIOLATION)


def _describe(exc: fastjsonschema.JsonSchemaValueException) -> str:
    # Built from the schema and the field path only: fastjsonschema's own message
    # is not guaranteed to leave the offending value out.
    field = _field_path(str(exc.name))
    rule = str(exc.rule)
    definition: Any = exc.definition

    if rule == "required" and isinstance(exc.value, dict):
        missing = [name for name in exc.rule_definition if name not in exc.value]
        return f"{field} lacks required {', '.join(missing)}"
    if rule == "additionalProperties" and isinstance(exc.value, dict):
        allowed = definition.get("properties", {})
        unexpected = sorted(name for name in exc.value if name not in allowed)
        return f"{field} has properties the schema does not allow: " + ", ".join(
            unexpected
        )
    if rule == "type":
        return f"{field} must be of type {exc.rule_definition}"
    if rule == "enum":
        return f"{field} is not one of the values the schema allows"
    return f"{field} breaks {rule} {exc.rule_definition}"


def _field_path(name: str) -> str:
    if name == _ROOT_NAME:
        return "payload"
    return name.removeprefix(_ROOT_NAME + ".")
