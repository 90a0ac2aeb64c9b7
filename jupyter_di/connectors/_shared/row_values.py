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

from ..base import is_json_field
from .infinity import json_value


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


def cursor_values(batch: pa.RecordBatch, columns: list[str]) -> tuple[dict[str, Any] | None, int]:
    """The bookmark a sorted batch ends on, and how many of its rows cannot carry one.

    A row with a NULL in any bookmark column is never ``>=`` a bookmark, so it cannot be tracked
    incrementally: the bookmark is taken from the last row whose bookmark columns are all set (the
    greatest, since reads are sorted by bookmark; NULLs sort last), never from a NULL.  Returns
    (that row's JSON values or None, the number of rows with a NULL bookmark column).
    """
    if batch.num_rows == 0:
        return None, 0
    indexes = [batch.schema.get_field_index(name) for name in columns]
    if any(i < 0 for i in indexes):
        return None, 0
    arrays = [batch.column(i) for i in indexes]
    null_rows = 0
    if any(a.null_count for a in arrays):
        import pyarrow.compute as pc

        valid = arrays[0].is_valid()
        for array in arrays[1:]:
            valid = pc.and_(valid, array.is_valid())
        tracked = pc.sum(valid.cast(pa.int64())).as_py() or 0
        null_rows = batch.num_rows - tracked
        if tracked == 0:
            return None, null_rows
        positions = pc.indices_nonzero(valid)
        last = positions[len(positions) - 1].as_py()
    else:
        last = batch.num_rows - 1
    values = {}
    for name, index, array in zip(columns, indexes, arrays):
        value = to_json_value(_python_value(array, last))
        if is_json_field(batch.schema.field(index)) and isinstance(value, str):
            value = _parsed_json(value)
        values[name] = value
    return values, null_rows


def _parsed_json(text: str) -> Any:
    """A JSON cursor's bookmark is the JSON value itself: kept as its text, a jsonb number would be
    compared with a jsonb *string* (every number sorts below every string: 0 rows, forever)."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _python_value(array: pa.Array, index: int) -> Any:
    """One value as Python; an infinite date or timestamp as ``"infinity"``/``"-infinity"``.  A zoned
    timestamp comes back in UTC (the same instant): pyarrow's own conversion of a zoned scalar imports
    pandas (about 40 MB and 0.15 s per process)."""
    data_type = array.type
    infinite = json_value(array, index)  # infinity/-infinity: no Python date or datetime holds them
    if infinite is not None:
        return infinite
    if pa.types.is_timestamp(data_type) and data_type.tz is not None and data_type.unit != "ns":
        naive = array.slice(index, 1).cast(pa.timestamp(data_type.unit))[0].as_py()
        return None if naive is None else naive.replace(tzinfo=dt.timezone.utc)
    return array[index].as_py()
