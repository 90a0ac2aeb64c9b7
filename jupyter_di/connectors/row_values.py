"""Turning Arrow values into JSON bookmark values and back into comparable keys.

Why: bookmarks are stored as JSON (Singer state vocabulary) and sent back to
sources as inclusive lower bounds; timestamps travel as ISO-8601 strings and
decimals as strings so nothing loses precision.
"""
from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow as pa


def to_json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def last_row_values(batch: pa.RecordBatch, columns: list[str]) -> dict[str, Any] | None:
    """The JSON values of ``columns`` in the batch's last row (its bookmark, when sorted)."""
    if batch.num_rows == 0:
        return None
    out = {}
    for name in columns:
        index = batch.schema.get_field_index(name)
        if index < 0:
            return None
        out[name] = to_json_value(_python_value(batch.column(index), batch.num_rows - 1))
    return out


def _python_value(array: pa.Array, index: int) -> Any:
    """One value as Python.  A zoned timestamp comes back in UTC (the same instant): pyarrow's own
    conversion of a zoned scalar imports pandas (about 40 MB and 0.15 s per process)."""
    data_type = array.type
    if pa.types.is_timestamp(data_type) and data_type.tz is not None and data_type.unit != "ns":
        naive = array.slice(index, 1).cast(pa.timestamp(data_type.unit))[0].as_py()
        return None if naive is None else naive.replace(tzinfo=dt.timezone.utc)
    return array[index].as_py()
