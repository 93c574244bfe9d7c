"""Property-based run over the OpenAPI document: no request, however odd, gets a
server error.

Schemathesis generates requests for every operation from the schema. It drives
the ASGI app in its own event loops, so this runs on SQLite with a connection
pool that never carries a connection from one loop to the next.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy.pool import NullPool

from csms.app import Csms
from csms.db.engine import create_engine
from csms.settings import Settings

from support.databases import SqliteTemplate

OPERATOR_TOKEN = "fuzz-operator-token-that-is-long-enough-0123456789"


async def _prepare(csms: Csms) -> str:
    customer = await csms.customers.register(
        "fuzz@example.com", password="fuzz-password-1", name="Fuzz"
    )
    await csms.stations.register("FUZZ-1", latitude=52.5, longitude=13.4)
    token = await csms.customers.login("fuzz@example.com", "fuzz-password-1")
    assert token is not None
    assert customer.id > 0
    return str(token.access_token)


@pytest.fixture(scope="module")
def fuzz_target(
    sqlite_template: SqliteTemplate, tmp_path_factory: pytest.TempPathFactory
) -> tuple[OpenApiSchema, dict[str, str]]:
    url = sqlite_template.copy_to(Path(tmp_path_factory.mktemp("fuzz")))
    csms = Csms(
        Settings(database_url=url, operator_bootstrap_token=OPERATOR_TOKEN),  # type: ignore[arg-type]
        engine=create_engine(url, poolclass=NullPool),
    )
    access_token = asyncio.run(_prepare(csms))
    headers = {
        "operator": f"Bearer {OPERATOR_TOKEN}",
        "customer": f"Bearer {access_token}",
    }
    return schemathesis.openapi.from_asgi("/openapi.json", csms.api), headers


def test_no_request_gets_a_server_error(
    fuzz_target: tuple[OpenApiSchema, dict[str, str]],
) -> None:
    """Every operation, with up to 25 generated requests each."""
    schema, headers = fuzz_target
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10

    for operation in operations:
        role = "operator" if "/operator/" in operation.path else "customer"
        _fuzz(operation, authorization=headers[role])


def _fuzz(operation: Any, *, authorization: str) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case: Any) -> None:
        response = case.call(headers={"Authorization": authorization})
        assert response.status_code < 500, (
            case.method,
            case.formatted_path,
            response.text,
        )

    no_server_error()
