"""``csms simulate`` registers and runs stations against a running CSMS.

SQLite only: the simulator process and the CSMS share the database file, the way
a newcomer runs both on one machine.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from csms.app import Csms

from support.process import csms_command


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
async def test_simulate_registers_stations_that_boot_and_report_progress(
    csms: Csms, database_url: str, operator_http: httpx.AsyncClient
) -> None:
    process = await asyncio.create_subprocess_exec(
        csms_command(),
        "simulate",
        "--url",
        f"ws://127.0.0.1:{csms.ocpp_port}/ocpp",
        "--count",
        "3",
        "--version",
        "mixed",
        "--duration",
        "4",
        env={**os.environ, "CSMS_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def all_online() -> bool:
        answer = await operator_http.get("/api/v1/operator/stations")
        items = answer.json()["items"]
        return len(items) == 3 and all(item["online"] for item in items)

    deadline = asyncio.get_running_loop().time() + 15
    while not await all_online():
        assert asyncio.get_running_loop().time() < deadline, "stations never came"
        await asyncio.sleep(0.1)
    versions = {
        item["id"]: item["ocpp_version"]
        for item in (await operator_http.get("/api/v1/operator/stations")).json()[
            "items"
        ]
    }

    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert versions == {
        "SIM-0001": "ocpp1.6",
        "SIM-0002": "ocpp2.0.1",
        "SIM-0003": "ocpp1.6",
    }
    assert b"connected     3" in stderr
