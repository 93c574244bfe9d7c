"""Hypothesis strategies for OCPP payloads, built from the JSON schemas that the
``ocpp`` package ships (hypothesis-jsonschema does not run on the Hypothesis
version here). Covers what those schemas use: objects, arrays, strings with
``maxLength``/``enum``/``date-time``, integers, numbers, booleans and local
``$ref``s."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import ocpp
from hypothesis import strategies as st

SCHEMA_DIRECTORIES = {
    "ocpp1.6": Path(ocpp.__file__).parent / "v16" / "schemas",
    "ocpp2.0.1": Path(ocpp.__file__).parent / "v201" / "schemas",
}
TIMES = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2030, 1, 1),
    timezones=st.just(UTC),
).map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=10)


@cache
def request_schema(version: str, action: str) -> dict[str, Any]:
    directory = SCHEMA_DIRECTORIES[version]
    name = action if version == "ocpp1.6" else f"{action}Request"
    schema: dict[str, Any] = json.loads((directory / f"{name}.json").read_text())
    return schema


def valid_payloads(version: str, action: str) -> st.SearchStrategy[dict[str, Any]]:
    schema = request_schema(version, action)
    return _strategy(schema, schema)  # type: ignore[return-value]


def _strategy(node: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _strategy(root["definitions"][name], root)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        return st.fixed_dictionaries(
            {
                key: _strategy(properties[key], root)
                for key in properties
                if key in required
            },
            optional={
                key: _strategy(value, root)
                for key, value in properties.items()
                if key not in required
            },
        )
    if kind == "array":
        return st.lists(
            _strategy(node.get("items", {}), root),
            min_size=node.get("minItems", 0),
            max_size=min(node.get("maxItems", 3), 3),
        )
    if kind == "string":
        if node.get("format") == "date-time":
            return TIMES
        return st.text(
            st.characters(codec="utf-8", exclude_categories=("Cs",)),
            max_size=node.get("maxLength", 20),
        )
    if kind == "integer":
        return st.integers(
            min_value=node.get("minimum", -(2**31)),
            max_value=node.get("maximum", 2**31 - 1),
        )
    if kind == "number":
        return st.floats(
            min_value=node.get("minimum", -1e9),
            max_value=node.get("maximum", 1e9),
            allow_nan=False,
        )
    if kind == "boolean":
        return st.booleans()
    return JSON_SCALARS


def broken_payloads(version: str, action: str) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads that break the schema: a required field dropped, a field of the
    wrong type, or a field the schema does not know."""
    schema = request_schema(version, action)
    required = list(schema.get("required", []))

    @st.composite
    def broken(draw: st.DrawFn) -> dict[str, Any]:
        payload: dict[str, Any] = dict(draw(valid_payloads(version, action)))
        ways = ["wrong_type"]
        if required:
            ways.append("missing")
        if schema.get("additionalProperties") is False:
            ways.append("unknown")
        way = draw(st.sampled_from(ways))
        if way == "missing":
            payload.pop(draw(st.sampled_from(required)))
        elif way == "unknown":
            payload["notInTheSchema" + draw(st.text("xyz", max_size=3))] = 1
        else:
            key = draw(st.sampled_from(sorted(schema["properties"])))
            payload[key] = draw(_wrong_type_for(schema["properties"][key], schema))
        return payload

    return broken()


def _wrong_type_for(
    node: dict[str, Any], root: dict[str, Any]
) -> st.SearchStrategy[Any]:
    if "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    kind = node.get("type", "string" if "enum" in node else None)
    others = {
        "object": st.integers() | st.text(max_size=5),
        "array": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        "string": st.integers() | st.lists(st.integers(), max_size=2),
        "integer": st.text(max_size=5) | st.booleans().map(lambda b: {"b": b}),
        "number": st.text(max_size=5),
        "boolean": st.integers() | st.text(max_size=5),
    }
    return others.get(str(kind), st.just({"unexpected": True}))
