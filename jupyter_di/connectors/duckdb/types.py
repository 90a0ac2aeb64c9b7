"""Arrow -> DuckDB column types, for the tables the DuckDB destination creates."""

from __future__ import annotations

import pyarrow as pa

from .._shared.sql_names import quote_ident
from ..base import is_json_field

_DUCKDB_SIMPLE = [
    (pa.types.is_boolean, "BOOLEAN"),
    (lambda t: t == pa.int8(), "TINYINT"),
    (lambda t: t == pa.int16(), "SMALLINT"),
    (lambda t: t == pa.int32(), "INTEGER"),
    (lambda t: t == pa.int64(), "BIGINT"),
    (lambda t: t == pa.uint8(), "UTINYINT"),
    (lambda t: t == pa.uint16(), "USMALLINT"),
    (lambda t: t == pa.uint32(), "UINTEGER"),
    (lambda t: t == pa.uint64(), "UBIGINT"),
    (lambda t: t in (pa.float16(), pa.float32()), "FLOAT"),
    (pa.types.is_floating, "DOUBLE"),
    (pa.types.is_date, "DATE"),
    (pa.types.is_time, "TIME"),
    (pa.types.is_duration, "INTERVAL"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t), "BLOB"),
]


def duckdb_type(data_type: pa.DataType, field: pa.Field | None = None) -> str:
    """The DuckDB column type for an Arrow type (JSON-marked strings -> JSON)."""
    t = data_type
    if field is not None and is_json_field(field):
        return "JSON"
    if pa.types.is_dictionary(t):
        return duckdb_type(t.value_type)
    for test, name in _DUCKDB_SIMPLE:
        if test(t):
            return name
    if pa.types.is_decimal(t) and t.precision <= 38:
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return duckdb_type(t.value_type, t.value_field) + "[]"
    if pa.types.is_struct(t):
        inner = ", ".join(f"{quote_ident(f.name)} {duckdb_type(f.type, f)}" for f in t)
        return f"STRUCT({inner})"
    if pa.types.is_map(t):
        return f"MAP({duckdb_type(t.key_type)}, {duckdb_type(t.item_type)})"
    return "VARCHAR"
