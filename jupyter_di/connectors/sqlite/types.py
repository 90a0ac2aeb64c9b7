"""SQLite declared types <-> Arrow, and the stored form of each value.

SQLite has no column types, only declared types, so the declared type is the
schema: the source maps it to Arrow (``PRAGMA table_info``) and converts each
batch column by column; the destination declares types that read back the
same way.  Storage choices (all TEXT where SQLite has no native type):

- timestamps: ``YYYY-MM-DD HH:MM:SS.ffffff`` (the form SQLite's own date
  functions and SQLAlchemy use), tz-aware ones in UTC with ``+00:00``; one
  fixed width, so text order is time order and bookmarks compare as text;
- decimals: exact text under ``DECIMAL TEXT(p,s)`` (NUMERIC affinity would
  round to 15 digits); as a bookmark they sort by ``CAST(... AS REAL)``;
- booleans: 0/1 under ``BOOLEAN``; JSON: text under ``JSON``;
- lists of scalars: JSON arrays under ``JSON ARRAY <element type>`` so they
  come back as Arrow lists; other nested values: JSON text.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...errors import SchemaMismatch
from .._shared.db_file import first_line
from ..base import is_json_field, json_field

UTC = dt.timezone.utc
_TS_TEXT = "%Y-%m-%d %H:%M:%S"


# --------------------------------------------------------------------------- declared type -> Arrow


@dataclass(frozen=True)
class ColumnKind:
    """How one declared SQLite type reads into Arrow and binds as a bookmark."""

    field: pa.Field
    convert: Callable[[Sequence[Any]], list[Any]] | None = None
    bookmark: Callable[[Any], Any] = lambda v: v
    sort_cast: str | None = None


def _each(fn: Callable[[Any], Any]) -> Callable[[Sequence[Any]], list[Any]]:
    return lambda values: [None if v is None else fn(v) for v in values]


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _json_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _datetime(v: Any, aware: bool) -> dt.datetime:
    if isinstance(v, (int, float)):
        d = dt.datetime.fromtimestamp(v, UTC)
    else:
        d = dt.datetime.fromisoformat(_text(v).strip())
    if aware:
        return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
    return d if d.tzinfo is None else d.astimezone(UTC).replace(tzinfo=None)


def _timestamp_text(v: Any, aware: bool) -> str:
    """A bookmark value in the stored timestamp form (so text comparison is time comparison).

    The fraction loses its trailing zeros (and the dot when nothing is left): the bound must not be
    greater, as text, than any spelling of the same instant.  ``19:00:00.000000`` sorts after a stored
    ``19:00:00`` (SQLite's own CURRENT_TIMESTAMP form), so the rows tied with the bookmark were missed.
    """
    d = _datetime(v, aware)
    text = d.strftime(_TS_TEXT + ".%f").rstrip("0").rstrip(".")
    return text + ("+00:00" if aware else "")


def _decimal(scale: int) -> Callable[[Any], decimal.Decimal]:
    quantum = decimal.Decimal(1).scaleb(-scale)
    return lambda v: decimal.Decimal(_text(v) if not isinstance(v, float) else repr(v)).quantize(quantum)


_DECIMAL = re.compile(r"^(DECIMAL|NUMERIC)\b[^(]*(\(\s*(\d+)\s*(,\s*(\d+)\s*)?\))?")


def column_kind(name: str, declared: str) -> ColumnKind:
    """The Arrow field and converters for a declared SQLite type (affinity-like rules)."""
    d = (declared or "").upper().strip()
    if d.startswith(SQLITE_JSON_ARRAY):
        element = column_kind("item", d[len(SQLITE_JSON_ARRAY) :])
        if element.field.type in (pa.int64(), pa.float64(), pa.bool_(), pa.string()):
            return ColumnKind(pa.field(name, pa.list_(element.field.type)), _each(lambda v: json.loads(_text(v))))
    if "JSON" in d:
        return ColumnKind(json_field(name), _each(_json_text))
    if "BOOL" in d:
        return ColumnKind(pa.field(name, pa.bool_()), _each(bool), int)
    if "TIMESTAMPTZ" in d or "WITH TIME ZONE" in d:
        return ColumnKind(
            pa.field(name, pa.timestamp("us", tz="UTC")), _each(lambda v: _datetime(v, True)), lambda v: _timestamp_text(v, True)
        )
    if "DATETIME" in d or "TIMESTAMP" in d:
        return ColumnKind(pa.field(name, pa.timestamp("us")), _each(lambda v: _datetime(v, False)), lambda v: _timestamp_text(v, False))
    if d == "DATE":
        to_date = lambda v: dt.date.fromisoformat(_text(v)[:10])  # noqa: E731
        return ColumnKind(pa.field(name, pa.date32()), _each(to_date), lambda v: to_date(v).isoformat())
    if d == "TIME":
        return ColumnKind(pa.field(name, pa.time64("us")), _each(lambda v: dt.time.fromisoformat(_text(v))), str)
    m = _DECIMAL.match(d)
    if m:
        precision, scale = (int(m.group(3)), int(m.group(5) or 0)) if m.group(3) else (38, 9)
        if precision <= 38:
            return ColumnKind(pa.field(name, pa.decimal128(precision, scale)), _each(_decimal(scale)), float, "REAL")
    if "INT" in d:
        return ColumnKind(pa.field(name, pa.int64()), bookmark=int)
    if any(t in d for t in ("CHAR", "CLOB", "TEXT")) or not d:
        return ColumnKind(pa.field(name, pa.string()), _each(_text), str)
    if "BLOB" in d:
        return ColumnKind(pa.field(name, pa.binary()), _each(lambda v: v.encode() if isinstance(v, str) else bytes(v)))
    if any(t in d for t in ("REAL", "FLOA", "DOUB")):
        return ColumnKind(pa.field(name, pa.float64()), bookmark=float)
    return ColumnKind(pa.field(name, pa.string()), _each(_text), str)


def to_arrow(kind: ColumnKind, declared: str, values: Sequence[Any], stream: str) -> pa.Array:
    try:
        return pa.array(kind.convert(values) if kind.convert else list(values), kind.field.type)
    except (ValueError, TypeError, decimal.InvalidOperation, pa.ArrowException) as exc:
        raise SchemaMismatch(
            f"column {kind.field.name!r} is declared {declared or 'without a type'} but holds a value that is not "
            f"{kind.field.type} ({first_line(exc)}).",
            stream=stream,
            fix="clean the column, or deselect it.",
        ) from exc


# --------------------------------------------------------------------------- Arrow -> declared type


# SQLite keeps lists of scalars as JSON text under a declared type that names the
# element type, so a SQLite source can give the list back (``column_kind``).
SQLITE_JSON_ARRAY = "JSON ARRAY"
_SQLITE_LIST_ELEMENTS = [
    (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_integer, "BIGINT"),
    (pa.types.is_floating, "DOUBLE"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "TEXT"),
]


def sqlite_type(data_type: pa.DataType, field: pa.Field | None = None) -> str:
    """The SQLite declared type for an Arrow type.

    Decimals are ``DECIMAL TEXT(p,s)``: TEXT affinity keeps the exact digits
    (NUMERIC affinity would round to 15 significant digits) while the declared
    precision and scale let a SQLite source read ``decimal128(p,s)`` back.
    Timestamps are TEXT in one fixed ISO-8601 form (see the module docstring).
    """
    t = data_type
    if field is not None and is_json_field(field):
        return "JSON"
    if pa.types.is_dictionary(t):
        return sqlite_type(t.value_type)
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "REAL"
    if pa.types.is_decimal(t):
        return f"DECIMAL TEXT({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BLOB"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        for test, name in _SQLITE_LIST_ELEMENTS:
            if test(t.value_type):
                return f"{SQLITE_JSON_ARRAY} {name}"
        return "JSON"
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return "JSON"
    return "TEXT"


# --------------------------------------------------------------------------- Arrow -> SQLite values


def sqlite_values(column: pa.Array, field: pa.Field) -> list[Any]:
    """Python values SQLite stores for one Arrow column (see the module docstring for the forms)."""
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.dictionary_decode(), t.value_type
    if pa.types.is_null(t):
        return [None] * len(column)
    if pa.types.is_decimal(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return pc.cast(column, pa.string()).to_pylist()
    if pa.types.is_timestamp(t):
        text = pc.strftime(pc.cast(column, pa.timestamp("us", tz="UTC" if t.tz else None), safe=False), format=_TS_TEXT)
        if t.tz:
            text = pc.binary_join_element_wise(text, pa.scalar("+00:00"), "")
        return text.to_pylist()
    nested = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    if (nested or pa.types.is_struct(t) or pa.types.is_map(t)) and not is_json_field(field):
        dumps = lambda v: json.dumps(v, default=str, separators=(",", ":"), ensure_ascii=False)  # noqa: E731
        return [None if v is None else dumps(v) for v in column.to_pylist()]
    return column.to_pylist()
