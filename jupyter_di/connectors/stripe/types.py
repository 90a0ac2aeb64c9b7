"""Stripe's JSON values -> Arrow columns of a stream's declared shape (``streams.py``).

Timestamps arrive as Unix seconds and become zoned (UTC) microsecond timestamps; amounts stay
integers; nested objects and lists become JSON text columns.  A value of another type than the
declared one is an error naming the stream and the field, except in text columns, which take the
JSON text of an object (an expanded id, say).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...errors import SchemaMismatch
from .._shared.json_records import dumps
from ..base import is_json_field, json_field
from .streams import StripeStream

TIMESTAMP = pa.timestamp("us", tz="UTC")
_TYPES = {"s": pa.string(), "i": pa.int64(), "f": pa.float64(), "b": pa.bool_(), "t": TIMESTAMP}


def schema_for(stream: StripeStream, expanded: list[str] | None = None) -> pa.Schema:
    """The stream's columns; fields named in ``expanded`` hold the expanded object (JSON)."""
    wide = {path.split(".")[0] for path in expanded or []}
    return pa.schema([json_field(name) if kind == "j" or name in wide else pa.field(name, _TYPES[kind]) for name, kind in stream.fields()])


def _column(values: list[Any], field: pa.Field, stream: str) -> pa.Array:
    if is_json_field(field):
        return pa.array([None if v is None else dumps(v) for v in values], pa.string())
    if pa.types.is_string(field.type):
        return pa.array([v if v is None or isinstance(v, str) else dumps(v) for v in values], pa.string())
    try:
        if pa.types.is_timestamp(field.type):
            seconds = pa.array(values, pa.int64())
            return pc.multiply(seconds, 1_000_000).cast(TIMESTAMP)
        if pa.types.is_floating(field.type):
            return pa.array([None if v is None else float(v) for v in values], field.type)
        if pa.types.is_integer(field.type) and any(isinstance(v, bool) for v in values):
            raise TypeError("a boolean where an integer belongs")
        return pa.array(values, field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        bad = next((v for v in values if v is not None and not isinstance(v, (int, float, bool))), None)
        raise SchemaMismatch(
            f"Stripe sent {type(bad).__name__ if bad is not None else 'a value'} for field {field.name!r}, declared {field.type} ({exc}).",
            stream=stream,
            fix="report it: the stream's shape in jupyter_di/connectors/stripe/streams.py does not match the API version of this account.",
        ) from None


def to_batch(records: list[dict[str, Any]], schema: pa.Schema, stream: str) -> pa.RecordBatch:
    """Records as a batch of exactly ``schema`` (fields the schema lacks are left out)."""
    return pa.RecordBatch.from_arrays([_column([r.get(f.name) for r in records], f, stream) for f in schema], schema=schema)
