"""``csms demo`` walks the whole journey on its own embedded database.

SQLite only: the demo is the embedded default by definition.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from csms.settings import Settings
from csms.simulator.demo import run_demo


async def test_the_demo_charges_a_car_and_shows_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()

    await run_demo(
        Settings(
            http_host="127.0.0.1", http_port=0, ocpp_host="127.0.0.1", ocpp_port=0
        ),
        out=out,
    )

    text = out.getvalue()
    assert "DEMO-HBF (Hauptbahnhof) connected over ocpp2.0.1" in text
    assert re.search(r"0\.\d\d km  DEMO-ALEX", text)
    finished = re.search(r"Finished: (\d+\.\d+) kWh, Remote", text)
    assert finished is not None, text
    assert float(finished.group(1)) > 0
    assert (tmp_path / "var" / "demo.sqlite3").exists()
