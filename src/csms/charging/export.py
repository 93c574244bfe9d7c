"""Charge Detail Records as CSV, for operators' spreadsheets and billing runs.

Pure: records in, text out. The route streams it a page at a time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime

from csms.charging.models import ChargeDetailRecord

CSV_COLUMNS = (
    "id",
    "state",
    "station_id",
    "evse_id",
    "connector_id",
    "customer_id",
    "car_id",
    "id_token",
    "transaction_id",
    "meter_start_wh",
    "meter_stop_wh",
    "energy_wh",
    "energy_kwh",
    "requested_at",
    "started_at",
    "stopped_at",
    "stop_reason",
    "failure_reason",
    "flags",
)
# OWASP "CSV injection": a text cell starting with one of these is a formula to
# a spreadsheet. Station ids (which may contain + and @) and station-sent stop
# reasons are not ours to trust.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_header() -> str:
    return _line(CSV_COLUMNS)


def csv_lines(records: Iterable[ChargeDetailRecord]) -> str:
    return "".join(_line(_row(record)) for record in records)


def _row(record: ChargeDetailRecord) -> tuple[object, ...]:
    energy = record.energy_wh
    return (
        record.id,
        record.state,
        _text(record.station_id),
        record.evse_id,
        record.connector_id,
        record.customer_id,
        record.car_id,
        _text(record.id_token),
        _text(record.transaction_id),
        record.meter_start_wh,
        record.meter_stop_wh,
        energy,
        None if energy is None else f"{energy / 1000:.3f}",
        _time(record.requested_at),
        _time(record.started_at),
        _time(record.stopped_at),
        _text(record.stop_reason),
        _text(record.failure_reason),
        ";".join(str(flag) for flag in record.flags),
    )


def _text(value: str | None) -> str | None:
    if value is not None and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _line(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(
        "" if value is None else value for value in values
    )
    return buffer.getvalue()
