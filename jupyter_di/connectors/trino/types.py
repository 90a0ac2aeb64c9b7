"""Arrow types -> Trino column types, and how a column of literals reaches a column of a Trino type.

Why these types: the tables must be readable the same way in every catalog a Trino user loads into,
and the lake formats (Iceberg, Delta Lake, Hive) lack ``tinyint``, ``smallint`` and ``json``; Delta
Lake also lacks ``time`` (times are text there) and Trino keeps its zoned timestamps only to the
millisecond (zoned timestamps are ``timestamp(6)`` in UTC there, exact to the microsecond).  So
small integers become ``integer``, nested values (lists, structs, maps) and JSON-marked text
become JSON text, kept in a ``json`` column on connectors that store that type and in ``varchar``
elsewhere, timestamps are ``timestamp(6)`` (``with time zone`` when zoned), decimals keep their
precision up to Trino's 38 digits (wider ones are text).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from ..base import is_json_field
from .literals import is_binary, is_nested

JSON_CONNECTORS = frozenset({"memory", "postgresql", "mysql", "mariadb", "singlestore"})
"""Connectors whose tables store Trino's ``json`` type; elsewhere JSON text is ``varchar``."""

MAX_DECIMAL_PRECISION = 38


def trino_type(field: pa.Field, connector: str) -> str:
    """The column type created for ``field`` in a catalog of ``connector``."""
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.json":
            return _json_type(connector)
        t = t.storage_type
    if is_json_field(field) or is_nested(t):
        return _json_type(connector)
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t) or pa.types.is_uint8(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t) or pa.types.is_duration(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "decimal(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_decimal(t):
        if t.precision <= MAX_DECIMAL_PRECISION and t.scale >= 0:
            return f"decimal({t.precision},{t.scale})"
        return "varchar"
    if is_binary(t):
        return "varbinary"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        if t.tz and connector == "delta_lake":
            return "timestamp(6)"  # UTC: Delta Lake keeps zoned timestamps only to the millisecond in Trino
        return "timestamp(6) with time zone" if t.tz else "timestamp(6)"
    if pa.types.is_time(t):
        return "varchar" if connector == "delta_lake" else "time(6)"  # Delta Lake has no time type
    return "varchar"


def zoned_into_plain(source: pa.DataType, column_type: str) -> bool:
    """A zoned timestamp going into a ``timestamp(p)`` column: its text (in UTC, with `` UTC``) is
    read as a zoned value first, then cast, which keeps its UTC wall time (a direct cast of the text
    refuses the zone)."""
    plain = column_type.lower().startswith("timestamp") and "with time zone" not in column_type.lower()
    return plain and pa.types.is_timestamp(source) and source.tz is not None


def _json_type(connector: str) -> str:
    return "json" if connector in JSON_CONNECTORS else "varchar"


_STRUCTURAL = re.compile(r"^(array|map|row)\(", re.IGNORECASE)


def unnest_plan(column_type: str, source: pa.DataType) -> tuple[str, str]:
    """How one JSON-array literal of an Arrow ``source`` column's texts reaches a column of ``column_type``.

    Returns (the array expression, with ``{}`` standing for the literal; the select expression over
    the unnested element, with ``{}`` standing for it).  Texts are cast to the column's type by
    Trino (so Trino's own parser reads every value); binary texts are hex (``from_hex``); JSON and
    structural columns (``array``, ``map``, ``row``) are parsed from JSON text.
    """
    texts = "CAST(json_parse({}) AS ARRAY(varchar))"
    if is_binary(source):
        return "transform(" + texts + ", x -> from_hex(x))", ("{}" if column_type == "varbinary" else "CAST({} AS " + column_type + ")")
    if column_type == "json":
        return texts, "json_parse({})"
    if _STRUCTURAL.match(column_type):
        return texts, "CAST(json_parse({}) AS " + column_type + ")"
    if column_type.startswith(("varchar", "char")):
        return texts, "{}"  # INSERT checks the length (a CAST to varchar(n) would cut silently)
    if zoned_into_plain(source, column_type):
        return "CAST(" + texts + " AS ARRAY(timestamp(6) with time zone))", "CAST({} AS " + column_type + ")"
    return "CAST(" + texts + " AS ARRAY(" + column_type + "))", "{}"


_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$", re.IGNORECASE)
_INTEGERS = frozenset({"tinyint", "smallint", "integer", "bigint"})


def rounded_values(array: pa.Array | pa.ChunkedArray, column_type: str) -> int:
    """How many values of ``array`` a cast to ``column_type`` would round: decimals (and floats) with
    more decimal places than a decimal column's scale (as numbers or as text), or any fraction for an
    integer column; timestamps with more fractional digits than a ``timestamp(p)`` column keeps."""
    t = array.type
    if pa.types.is_dictionary(t):
        array, t = array.cast(t.value_type), t.value_type
    if pa.types.is_timestamp(t):
        return _rounded_instants(array, t, column_type)
    match = _DECIMAL.match(column_type.strip())
    if match and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        # decimal text with a non-zero digit past the column's scale: Trino's CAST rounds it ('12.555' -> 12.56)
        pattern = rf"^\s*[+-]?\d*\.\d{{{int(match.group(2))}}}\d*[1-9]"
        return int(pc.sum(pc.match_substring_regex(array, pattern)).as_py() or 0)
    scale = int(match.group(2)) if match else 0 if column_type.strip().lower() in _INTEGERS else None
    if scale is None or not (pa.types.is_decimal(t) and t.scale > scale or pa.types.is_floating(t)):
        return 0
    if pa.types.is_floating(t):
        array = pc.filter(array, pc.is_finite(array))  # NaN and infinities: Trino's cast refuses them
    changed = pc.not_equal(pc.round(array, ndigits=scale), array)
    return int(pc.sum(changed).as_py() or 0)


_TIMESTAMP = re.compile(r"^timestamp\((\d+)\)", re.IGNORECASE)
_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def _rounded_instants(array: pa.Array | pa.ChunkedArray, t: pa.TimestampType, column_type: str) -> int:
    match = _TIMESTAMP.match(column_type.strip())
    dropped = _UNIT_DIGITS[t.unit] - int(match.group(1)) if match else 0
    if dropped <= 0:
        return 0
    ticks = pc.cast(array, pa.int64())
    return int(pc.sum(pc.not_equal(pc.remainder(ticks, 10**dropped), 0)).as_py() or 0)
