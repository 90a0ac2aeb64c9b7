"""Stripe's JSON values -> Arrow columns of a stream's declared shape (``streams.py``).

Timestamps arrive as Unix seconds and become zoned (UTC) microsecond timestamps; amounts stay
integers; nested objects and lists become JSON text columns.  Arrays are built from buffers, not
``pa.array`` (whose first use imports pandas: the sync path does without it).  A value of another type than the
declared one is an error naming the stream and the field, except in text columns, which take the
JSON text of an object (an expanded id, say).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ...errors import SchemaMismatch
from .._shared.arrow_build import text_array
from .._shared.json_records import dumps
from ..base import is_json_field, json_field
from .streams import StripeStream

TIMESTAMP = pa.timestamp("us", tz="UTC")
_TYPES = {"s": pa.string(), "i": pa.int64(), "f": pa.float64(), "b": pa.bool_(), "t": TIMESTAMP}


def schema_for(stream: StripeStream, expanded: list[str] | None = None) -> pa.Schema:
    """The stream's columns; fields named in ``expanded`` hold the expanded object (JSON)."""
    wide = {path.split(".")[0] for path in expanded or []}
    return pa.schema([json_field(name) if kind == "j" or name in wide else pa.field(name, _TYPES[kind]) for name, kind in stream.fields()])


def _numbers(values: list[Any], field: pa.Field, stream: str) -> pa.Array:
    """An int64/float64/bool/timestamp array from buffers (no pandas probe, see ``_shared/arrow_build``)."""
    data_type = field.type
    if pa.types.is_boolean(data_type):
        ok = all(v is None or isinstance(v, bool) for v in values)
    elif pa.types.is_floating(data_type):
        ok = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)
    else:
        ok = all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values)
    if not ok:
        bad = next(
            v
            for v in values
            if v is not None and not isinstance(v, (int, float, bool)) or isinstance(v, bool) != pa.types.is_boolean(data_type)
        )
        raise SchemaMismatch(
            f"Stripe sent {type(bad).__name__} {str(bad)[:40]!r} for field {field.name!r}, declared {data_type}.",
            stream=stream,
            fix="report it: the stream's shape in jupyter_di/connectors/stripe/streams.py does not match the API version of this account.",
        )
    nulls = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    null_count = int(nulls.sum())
    validity = pa.py_buffer(np.packbits(~nulls, bitorder="little")) if null_count else None
    if pa.types.is_boolean(data_type):
        bits = np.packbits(np.fromiter((v is True for v in values), dtype=bool, count=len(values)), bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [validity, pa.py_buffer(bits)], null_count=null_count)
    if pa.types.is_floating(data_type):
        data = np.fromiter((0.0 if v is None else float(v) for v in values), dtype=np.float64, count=len(values))
    else:
        try:
            data = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=len(values))
        except OverflowError:
            raise SchemaMismatch(f"field {field.name!r} holds a number beyond 64 bits.", stream=stream) from None
        if pa.types.is_timestamp(data_type):
            data = data * 1_000_000  # Unix seconds -> microseconds
    return pa.Array.from_buffers(data_type, len(values), [validity, pa.py_buffer(data)], null_count=null_count)


def _column(values: list[Any], field: pa.Field, stream: str) -> pa.Array:
    if is_json_field(field):
        return text_array([None if v is None else dumps(v) for v in values])
    if pa.types.is_string(field.type):
        return text_array([v if v is None or isinstance(v, str) else dumps(v) for v in values])
    return _numbers(values, field, stream)


def to_batch(records: list[dict[str, Any]], schema: pa.Schema, stream: str) -> pa.RecordBatch:
    """Records as a batch of exactly ``schema`` (fields the schema lacks are left out)."""
    return pa.RecordBatch.from_arrays([_column([r.get(f.name) for r in records], f, stream) for f in schema], schema=schema)
