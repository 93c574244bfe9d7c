"""Reading energy out of OCPP meter values (1.6 MeterValue, 2.0.1 MeterValueType).

Both versions send a list of ``{timestamp, sampledValue: [...]}``. The energy
register is ``Energy.Active.Import.Register`` — also the measurand when none is
named (1.6 section 7.31; 2.0.1 SampledValueType). 1.6 carries the value as a
string with a ``unit``; 2.0.1 as a number with ``unitOfMeasure {unit, multiplier}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ENERGY_REGISTER = "Energy.Active.Import.Register"
# Far beyond any meter (10^15 kWh), and safely inside a 64-bit column.
MAX_READING_WH = 10**18


@dataclass(frozen=True, slots=True)
class EnergyReading:
    timestamp: datetime
    wh: int


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def latest_energy(meter_values: Iterable[Mapping[str, Any]]) -> EnergyReading | None:
    """The newest total energy register reading in a list of meter values."""
    latest: EnergyReading | None = None
    for meter_value in meter_values:
        try:
            timestamp = parse_timestamp(meter_value["timestamp"])
        except (KeyError, TypeError, ValueError):
            continue
        wh = _energy_of(meter_value.get("sampledValue") or [])
        if wh is None:
            continue
        if latest is None or timestamp >= latest.timestamp:
            latest = EnergyReading(timestamp=timestamp, wh=wh)
    return latest


def _energy_of(sampled_values: Iterable[Mapping[str, Any]]) -> int | None:
    total: int | None = None
    for sample in sampled_values:
        if sample.get("measurand", ENERGY_REGISTER) != ENERGY_REGISTER:
            continue
        # A value per phase is a part; the total has no phase.
        if sample.get("phase") not in (None, "N"):
            continue
        wh = _to_wh(sample)
        if wh is not None:
            total = wh
    return total


def _to_wh(sample: Mapping[str, Any]) -> int | None:
    # A value no meter can show (out of range, not finite) is no reading: the
    # message is still stored as received, in the journal.
    try:
        value = float(sample["value"])
        unit_of_measure = sample.get("unitOfMeasure")
        if isinstance(unit_of_measure, Mapping):
            unit = unit_of_measure.get("unit", "Wh")
            value *= 10.0 ** int(unit_of_measure.get("multiplier", 0))
        else:
            unit = sample.get("unit", "Wh")
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if unit == "kWh":
        value *= 1000
    elif unit != "Wh":
        return None
    if not math.isfinite(value) or abs(value) > MAX_READING_WH:
        return None
    return round(value)
