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
        out[name] = to_json_value(batch.column(index)[batch.num_rows - 1].as_py())
    return out
