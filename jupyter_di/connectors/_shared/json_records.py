"""JSON records (Python dicts) <-> Arrow, for JSON Lines files and HTTP JSON APIs.

Why not ``pyarrow.json``: it turns nested objects into structs (filling keys a
row lacks with nulls and parsing timestamps inside them), so a nested value
cannot travel on as the JSON text it was.  Our convention is that nested
objects and arrays become strings holding their JSON text, marked with the
JSON logical type; scalars get the type Arrow infers from a sample.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ...errors import SchemaMismatch
from ..base import is_json_field, json_field

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(?P<tz>Z|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

dumps = json.JSONEncoder(ensure_ascii=False).encode
"""JSON text of a value, unicode kept (one encoder: ``json.dumps`` with options builds one per call)."""


def _string_kind(values: list[str]) -> pa.DataType:
    """timestamp/date when every sample string is ISO-8601, else string."""
    if all(_DATE.match(v) for v in values):
        return pa.date32()
    matches = [_TIMESTAMP.match(v) for v in values]
    if all(matches):
        zoned = {bool(m.group("tz")) for m in matches if m}
        if zoned == {True}:
            return pa.timestamp("us", tz="UTC")
        if zoned == {False}:
            return pa.timestamp("us")
    return pa.string()


def infer_schema(records: Iterable[dict[str, Any]], *, detect_timestamps: bool = False) -> pa.Schema:
    """Arrow schema for sample records: columns in order of first appearance.

    Objects/arrays -> JSON-marked strings; mixed scalar types -> string;
    all-null -> string; ISO strings -> timestamp/date when ``detect_timestamps``.
    """
    columns: dict[str, list[Any]] = {}
    for record in records:
        for key, value in record.items():
            columns.setdefault(key, []).append(value)
    fields = []
    for name, values in columns.items():
        present = [v for v in values if v is not None]
        if any(isinstance(v, (dict, list)) for v in present):
            fields.append(json_field(name))
            continue
        if not present:
            fields.append(pa.field(name, pa.string()))
            continue
        if detect_timestamps and all(isinstance(v, str) for v in present):
            fields.append(pa.field(name, _string_kind(present)))
            continue
        try:
            data_type = pa.array(present).type
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            data_type = pa.string()
        if not (
            pa.types.is_boolean(data_type)
            or pa.types.is_integer(data_type)
            or pa.types.is_floating(data_type)
            or pa.types.is_string(data_type)
        ):
            data_type = pa.string()
        fields.append(pa.field(name, data_type))
    return pa.schema(fields)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value)


def to_batch(records: list[dict[str, Any]], schema: pa.Schema, stream: str | None = None) -> pa.RecordBatch:
    """Records as a batch of exactly ``schema`` (fields it lacks are ignored)."""
    arrays = []
    for field in schema:
        values = [r.get(field.name) for r in records]
        if is_json_field(field):
            arrays.append(pa.array([None if v is None else dumps(v) for v in values], pa.string()))
            continue
        if pa.types.is_string(field.type):
            arrays.append(pa.array([None if v is None else _as_text(v) for v in values], pa.string()))
            continue
        try:
            if pa.types.is_timestamp(field.type) or pa.types.is_date(field.type):
                array = pa.array(values, pa.string()).cast(field.type)
            else:
                array = pa.array(values).cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
            raise SchemaMismatch(
                f"field {field.name!r} has values that do not fit its discovered type {field.type} ({exc}).",
                stream=stream,
                fix="rediscover the stream's schema (its first rows decide the types).",
            ) from None
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _json_value(value: Any) -> Any:
    """A Python value from Arrow as something ``json.dumps`` writes faithfully."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def _parse_json_text(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def json_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """Rows of a batch as JSON-ready dicts; JSON-marked columns become nested values."""
    plain = (pa.types.is_integer, pa.types.is_string, pa.types.is_large_string, pa.types.is_boolean)
    convert = {
        f.name: _parse_json_text if is_json_field(f) else _json_value
        for f in batch.schema
        if is_json_field(f) or not any(check(f.type) for check in plain)
    }
    rows = batch.to_pylist()
    if convert:
        for row in rows:
            for key, fn in convert.items():
                value = row[key]
                if value is not None:
                    row[key] = fn(value)
    return rows


def text_column(array: pa.Array) -> pa.Array:
    """A nested/binary column as strings (CSV has no nested types): JSON text or base64."""
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        return pa.array([None if v is None else base64.b64encode(v).decode("ascii") for v in array.to_pylist()], pa.string())
    return pa.array([None if v is None else dumps(_json_value(v)) for v in array.to_pylist()], pa.string())
