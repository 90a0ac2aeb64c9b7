"""Infinite dates and timestamps in Arrow: one convention for every connector.

Why: PostgreSQL and DuckDB have ``infinity`` and ``-infinity`` dates and timestamps; Arrow has
neither.  We take DuckDB's convention, which its Arrow export and import already follow, so a value
passes between the two (and through Parquet into DuckDB) unchanged:

- ``+infinity`` is the greatest value of the type's storage: ``2**31 - 1`` days (``date32``),
  ``2**63 - 1`` (``timestamp``, any unit, zoned or not);
- ``-infinity`` is its negation: ``-(2**31 - 1)``, ``-(2**63 - 1)``.

Destinations that store infinity say so (``Destination.stores_infinity``); before any other one
receives a batch, ``refuse_infinities`` stops the write with the column's name, rather than let a
value of year 294247 (or an overflow deep in a driver) arrive instead.  The check is one
``min_max`` per date/timestamp column per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import SchemaMismatch

MAX = {32: 2**31 - 1, 64: 2**63 - 1}
"""+infinity per storage width (-infinity is its negation)."""
INFINITY, NEG_INFINITY = "infinity", "-infinity"
"""How an infinite value is spelled in JSON (bookmarks) and text: PostgreSQL's and DuckDB's spelling."""


def width(data_type: pa.DataType) -> int | None:
    """32 or 64 for a date32 or timestamp type (the types that may hold infinity), else None."""
    if pa.types.is_date32(data_type):
        return 32
    if pa.types.is_timestamp(data_type):
        return 64
    return None


def stored(array: pa.Array) -> np.ndarray:
    """A writable copy of the integers stored for a date32/timestamp array, from its buffer's start
    to the array's end (so ``replaced`` keeps the array's offset and validity bitmap as they are)."""
    dtype = np.int32 if pa.types.is_date32(array.type) else np.int64
    return np.frombuffer(array.buffers()[1], dtype=dtype)[: array.offset + len(array)].copy()


def replaced(array: pa.Array, values: np.ndarray, data_type: pa.DataType | None = None) -> pa.Array:
    """``array`` with ``values`` (from ``stored``) as its integers, the same nulls, typed ``data_type``
    (default: its own type)."""
    buffers = [array.buffers()[0], pa.py_buffer(values)]
    return pa.Array.from_buffers(data_type or array.type, len(array), buffers, null_count=array.null_count, offset=array.offset)


def extremes(array: pa.Array) -> tuple[int, int] | None:
    """(least, greatest) stored integer of the non-null values; None when all are null.
    ``min_max`` on an integer view: no Python per value, no pandas (a pyarrow scalar made from a
    Python int would import it)."""
    if len(array) == array.null_count:
        return None
    found = pc.min_max(array.view(pa.int32() if pa.types.is_date32(array.type) else pa.int64()))
    return found["min"].as_py(), found["max"].as_py()


def has_infinity(array: pa.Array) -> bool:
    bits = width(array.type)
    if bits is None:
        return False
    ends = extremes(array)
    return ends is not None and (ends[1] == MAX[bits] or ends[0] == -MAX[bits])


def temporal(data_type: pa.DataType) -> bool:
    """Whether a column of this type may hold an infinite value: a date32/timestamp, or a list of them."""
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        data_type = data_type.value_type
    return width(data_type) is not None


def temporal_values(array: pa.Array) -> pa.Array | None:
    """The date/timestamp values a column holds: itself, or the values of a list column; else None."""
    if width(array.type) is not None:
        return array
    if (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)) and width(array.type.value_type) is not None:
        return array.flatten()
    return None


def infinite_columns(batch: pa.RecordBatch) -> list[str]:
    """The columns of ``batch`` holding an infinite date or timestamp (lists of them included)."""
    found = []
    for name, column in zip(batch.schema.names, batch.columns):
        values = temporal_values(column.storage if isinstance(column, pa.ExtensionArray) else column)
        if values is not None and has_infinity(values):
            found.append(name)
    return found


def refuse_infinities(batches: Iterable[pa.RecordBatch], *, stream: str, destination: str) -> Iterator[pa.RecordBatch]:
    """``batches`` as they are, until one holds an infinite date or timestamp: then a SchemaMismatch
    naming the column and what to do (nothing of that batch reaches the destination)."""
    for batch in batches:
        columns = infinite_columns(batch)
        if columns:
            raise infinity_refused(columns, stream=stream, destination=destination)
        yield batch


def infinity_refused(columns: list[str], *, stream: str, destination: str) -> SchemaMismatch:
    listed = ", ".join(repr(c) for c in columns)
    return SchemaMismatch(
        f"column{'s' if len(columns) > 1 else ''} {listed} hold{'' if len(columns) > 1 else 's'} infinity or -infinity "
        f"(a date or timestamp), which destination {destination!r} cannot store.",
        stream=stream,
        fix="replace it at the source, e.g. in a view: CASE WHEN isfinite(col) THEN col END (NULL) or LEAST(col, '9999-12-31') "
        "(a far date); or write the stream into PostgreSQL or DuckDB, which store infinity.",
    )


def json_value(array: pa.Array, index: int) -> Any:
    """``infinity``/``-infinity`` when the value at ``index`` is infinite, else None (not infinite or
    not a date/timestamp): the bookmark's JSON spelling, which PostgreSQL and DuckDB cast back."""
    bits = width(array.type)
    if bits is None:
        return None
    value = array.view(pa.int32() if bits == 32 else pa.int64())[index].as_py()  # an integer scalar: no pandas
    if value is None:
        return None
    if value == MAX[bits]:
        return INFINITY
    if value == -MAX[bits]:
        return NEG_INFINITY
    return None
