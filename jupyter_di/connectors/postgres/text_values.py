"""Common PostgreSQL types from their text output to Arrow, in the client.

Why: ``pgoutput`` sends every value as its type's text.  Sending a chunk of changes back to the
server to be cast (``log_read``: a temporary table, a COPY in and a query out) was a third of a
LOG_BASED run's time.  For the types most tables are made of, Arrow's own casts parse the text
exactly as the server prints it (the slot is read with ``DateStyle = ISO``, ``TimeZone = UTC``
and shortest-exact floats, ``SESSION_SETTINGS``), into the Arrow type a snapshot read gives.

A column whose text Arrow cannot parse (``infinity``, ``NaN`` numerics, BC dates, years past
9999...) is not guessed at: ``text_to_arrow`` returns None and that column goes through the server,
as every other type (enums, domains over them, arrays, ranges, json, bpchar, bytea, time) does.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .._shared.arrow_build import text_array
from .types import PgColumn

SESSION_SETTINGS = ("SET DateStyle = 'ISO, YMD'", "SET TimeZone = 'UTC'", "SET extra_float_digits = 3")
"""The reading session's settings the client-side casts rely on (the decoder formats values with them)."""

_IDENTITY = {"text", "varchar", "name"}
_CAST = {"int2", "int4", "int8", "float8", "date", "timestamp", "timestamptz"}


def client_castable(column: PgColumn, target: pa.DataType) -> bool:
    """Whether the column's text is parsed in the client (else the server casts it)."""
    if column.typname in _IDENTITY or column.typname in _CAST or column.typname in ("float4", "bool"):
        return True
    return column.typname == "numeric" and (pa.types.is_decimal(target) or pa.types.is_string(target))


def text_to_arrow(values: pa.Array, column: PgColumn, target: pa.DataType) -> pa.Array | None:
    """``values`` (the text of one column, nulls where not sent) as ``target``; None where Arrow
    cannot parse every value (the caller asks the server)."""
    if not client_castable(column, target):
        return None
    try:
        if column.typname in _IDENTITY or (column.typname == "numeric" and pa.types.is_string(target)):
            return values.cast(target)
        if column.typname == "bool":
            t, f = text_array(["t", "f"])  # scalars from buffers: a Python str would make pyarrow import pandas
            true = pc.equal(values, t)
            if pc.all(pc.or_(true, pc.equal(values, f))).as_py() is False:  # nulls skipped
                return None
            return true.cast(target)
        if column.typname == "float4":  # read as the float4 it is, then widened (as a snapshot read does)
            return values.cast(pa.float32()).cast(target)
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
