"""Meter samples: what is read out of meter values, and what downsampling keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.charging.samples import MeterSampleWriter, Sample, read_samples

START = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _reading(at: datetime, wh: int) -> dict[str, Any]:
    return {"timestamp": at.isoformat(), "sampledValue": [{"value": str(wh)}]}


def _sample(minute: float, *, record_id: str = "r-1", wh: int = 1000) -> Sample:
    return Sample(
        record_id=record_id,
        sampled_at=START + timedelta(minutes=minute),
        meter_wh=wh,
        power_w=None,
        soc_percent=None,
    )


def _writer(**options: Any) -> MeterSampleWriter:
    # ``add`` never touches the database: a sessionmaker with no engine will do.
    return MeterSampleWriter(async_sessionmaker(class_=AsyncSession), **options)


def test_energy_power_and_soc_are_read_from_a_201_meter_value() -> None:
    meter_value = {
        "timestamp": "2026-12-03T12:00:00Z",
        "sampledValue": [
            {"value": 12.5, "unitOfMeasure": {"unit": "kWh"}},
            {
                "value": 11,
                "measurand": "Power.Active.Import",
                "unitOfMeasure": {"unit": "kW"},
            },
            {"value": 3700, "measurand": "Power.Active.Import", "phase": "L1"},
            {"value": 64, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}},
        ],
    }

    [sample] = read_samples("r-1", [meter_value], received_at=START)

    assert sample == Sample("r-1", START, 12_500, 11_000, 64)


def test_a_16_meter_value_without_energy_but_with_power_is_a_sample() -> None:
    meter_value = {
        "timestamp": "2026-12-03T12:00:00Z",
        "sampledValue": [
            {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"}
        ],
    }

    [sample] = read_samples("r-1", [meter_value], received_at=START)

    assert (sample.meter_wh, sample.power_w, sample.soc_percent) == (None, 7400, None)


def test_a_value_no_column_holds_is_left_out_and_an_empty_reading_skipped() -> None:
    meter_values = [
        {
            "timestamp": "2026-12-03T12:00:00Z",
            "sampledValue": [{"value": 140, "measurand": "SoC"}],
        },
        {"timestamp": "2026-12-03T12:01:00Z", "sampledValue": [{"value": "9e99"}]},
    ]

    assert read_samples("r-1", meter_values, received_at=START) == []


def test_an_implausible_time_counts_as_the_time_of_receipt() -> None:
    [sample] = read_samples(
        "r-1", [_reading(datetime(1970, 1, 1, tzinfo=UTC), 5)], received_at=START
    )

    assert sample.sampled_at == START


def test_at_most_one_sample_per_charge_per_interval_is_kept() -> None:
    writer = _writer(interval=timedelta(minutes=5))

    # A reading a minute for twelve minutes.
    for minute in range(12):
        writer.add([_sample(minute)])

    assert [s.sampled_at.minute for s in writer.pending] == [0, 5, 10]


def test_charges_are_downsampled_each_on_its_own() -> None:
    writer = _writer(interval=timedelta(minutes=5))

    writer.add([_sample(0, record_id="a"), _sample(1, record_id="b")])
    writer.add([_sample(2, record_id="a"), _sample(3, record_id="b")])

    assert len(writer) == 2


def test_a_reading_older_than_the_last_kept_is_left_to_the_journal() -> None:
    writer = _writer(interval=timedelta(minutes=5))

    writer.add([_sample(10)])
    writer.add([_sample(2)])

    assert len(writer) == 1


def test_the_last_reading_of_a_charge_is_kept_whatever_the_interval() -> None:
    writer = _writer(interval=timedelta(minutes=5))

    writer.add([_sample(0)])
    writer.add([_sample(1), _sample(2, wh=1200)], final=True)
    # The charge is forgotten: a new one under the same id starts afresh.
    writer.add([_sample(3)])

    assert [s.meter_wh for s in writer.pending] == [1000, 1200, 1000]


def test_the_buffer_drops_its_oldest_samples_beyond_its_limit() -> None:
    writer = _writer(interval=timedelta(minutes=5), pending_limit=2)

    for minute in (0, 5, 10):
        writer.add([_sample(minute)])

    assert len(writer) == 2
    assert writer.dropped == 1
