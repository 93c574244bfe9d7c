"""A scaled-down load run: the load generator's stations against a CSMS started in
the test. Correctness only — nothing dropped, every call answered — never timing.

SQLite only: the full-scale runs on PostgreSQL are benchmarks, run by hand.
"""

from __future__ import annotations

import asyncio
import io

import pytest

from csms.app import Csms
from csms.db.engine import create_sessionmaker
from csms.simulator.load import LoadProfile, format_report, run_load
from csms.stations.bulk import StationImporter, StationRow


@pytest.mark.parametrize("database_backend", ["sqlite"], indirect=True)
async def test_every_call_of_a_small_mixed_fleet_is_answered(csms: Csms) -> None:
    rows = [
        StationRow(
            line=i,
            station_id=f"LOAD-{i:03d}",
            latitude=None,
            longitude=None,
            name=None,
            password=None,
        )
        for i in range(40)
    ]
    importer = StationImporter(create_sessionmaker(csms.engine), clock=csms.clock)
    imported = await importer.import_rows(rows)
    fleet = sorted(imported.generated_passwords.items())
    profile = LoadProfile(
        url=f"ws://127.0.0.1:{csms.ocpp_port}/ocpp",
        duration=6,
        heartbeat_interval=1,
        charging_share=0.5,
        meter_interval=1,
        charge_duration=3,
        v201_share=0.5,
    )

    merged = await asyncio.to_thread(
        run_load, fleet, profile, processes=2, out=io.StringIO()
    )

    assert merged["connected"] == 40, format_report(merged)
    assert merged["connect_failures"] == 0
    assert merged["disconnects"] == 0
    assert dict(merged["errors"]) == {}, format_report(merged)
    answered = merged["latencies"]
    assert len(answered["BootNotification"]) == 40
    assert len(answered["Heartbeat"]) >= 40 * 3
    assert answered["StartTransaction"] or answered["TransactionEvent"]
