"""PostgreSQL <-> Arrow types for the postgresql connector, and the catalog queries behind them.

Why one module: discovery (JSON schema, ``sql-datatype``), the reader (which
select expression each column needs so ADBC can hand it over as Arrow, and
which Arrow type it ends up as) and the writer (which column type to create
for an Arrow field, and how to shape a batch so ADBC's COPY binary writer takes
it) must agree on one mapping, or a PostgreSQL -> PostgreSQL round trip drifts.

Decisions:
- ``numeric(p,s)`` with ``p <= 38`` reads as ``decimal128(p,s)``; unconstrained
  ``numeric`` (and ``p > 38``) reads as a string holding the exact value,
  because any fixed scale would silently round or overflow some values.
- ``real`` reads as float64; ``uuid``, ``interval``, enums, network, range,
  geometric types and anything else without an Arrow twin read as their text
  form (string).  Arrays of plain types read as Arrow lists; other arrays as
  lists of strings.
- json/jsonb read as strings holding JSON text, marked with the JSON logical
  type, and are written into ``jsonb`` columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from .._shared.infinity import temporal
from ..base import is_json_field, json_field
from .adbc import AdbcSession
from .infinity import cast_keeping_infinity, for_write

# Base type name (pg_type.typname) -> Arrow type, for types ADBC reads natively.
_SCALARS: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float64(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "bytea": pa.binary(),
}
_JSON_TYPES = ("json", "jsonb")
_ORDERABLE = {
    "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar", "bpchar", "name",
    "date", "time", "timestamp", "timestamptz", "uuid", "oid",
}  # fmt: skip
_COPY_SAFE = {*_SCALARS, "numeric", "jsonb", "uuid", "interval", "timetz", "inet", "cidr", "macaddr", "macaddr8"}
_MAX_DECIMAL_PRECISION = 38
_MAX_SCALED_PRECISION = 18  # |v * 10^s| < 10^18 fits int64


@dataclass
class PgColumn:
    """One column of a table as the catalog describes it."""

    name: str
    sql_type: str  # format_type(): what DDL and casts use, e.g. "numeric(12,2)"
    typname: str  # base type name, e.g. "numeric", "_int4" for int[]
    elem: str | None  # element type name for arrays
    typmod: int
    not_null: bool

    def _numeric_precision_scale(self) -> tuple[int, int] | None:
        if self.typmod < 4:
            return None
        mod = self.typmod - 4
        return (mod >> 16) & 0xFFFF, mod & 0xFFFF

    def arrow_field(self) -> pa.Field:
        """The Arrow field this column reads as."""
        if self.typname in _JSON_TYPES:
            return json_field(self.name, self._arrow_type())
        return pa.field(self.name, self._arrow_type())

    def _arrow_type(self) -> pa.DataType:
        if self.typname in _SCALARS:
            return _SCALARS[self.typname]
        if self.typname in _JSON_TYPES:
            return pa.string()
        if self.typname == "numeric":
            ps = self._numeric_precision_scale()
            if ps and ps[0] <= _MAX_DECIMAL_PRECISION:
                return pa.decimal128(*ps)
            return pa.string()
        if self.elem is not None:
            return pa.list_(_SCALARS.get(self.elem, pa.string()))
        return pa.string()

    def read_expression(self) -> sql.Composable:
        """What the reader selects for this column so ADBC hands it over cheaply as Arrow.

        ``numeric(p,s)`` with ``p <= 18`` travels as the exact scaled integer
        ``(v * 10^s)::int8`` (ADBC formats numerics as text, which costs three
        times the CPU); ``decimal_from_scaled`` turns it back into decimals.
        """
        name = sql.Identifier(self.name)
        cast = None
        if self.typname in _SCALARS or self.typname in _JSON_TYPES:
            cast = None
        elif self.typname == "numeric":
            ps = self._numeric_precision_scale()
            if ps and ps[0] <= _MAX_SCALED_PRECISION:
                return sql.SQL("({} * {})::int8 AS {}").format(name, sql.Literal(10 ** ps[1]), name)
            cast = None if pa.types.is_decimal(self._arrow_type()) else "text"
        elif self.elem is not None:
            cast = None if self.elem in _SCALARS else "text[]"
        else:
            cast = "text"
        if cast is None:
            return name
        return sql.SQL("{}::{} AS {}").format(name, sql.SQL(cast), name)

    @property
    def orderable(self) -> bool:
        return self.typname in _ORDERABLE

    @property
    def copy_safe(self) -> bool:
        """Whether this column's binary COPY form can pass from one database into the same type of
        another as it is (``BinaryCopy``): built-in types whose binary form is their value alone and
        whose Arrow round trip would give the same value.  Not user types (enums, domains,
        composites: database-specific, and arrays carry their element type's oid), not ``reg*``
        (oids of the source database), not ``json`` (the writer removes ``\\u0000`` escapes, which
        ``json`` keeps), not ``money`` (the Arrow path reads it as locale-formatted text)."""
        return (self.elem if self.elem is not None else self.typname) in _COPY_SAFE


def decimal_from_scaled(ints: pa.Array, dtype: pa.Decimal128Type) -> pa.Array:
    """Decimals from their unscaled int64 values (``12.50`` as ``1250`` with scale 2), exactly.

    A decimal128 value is a 16-byte two's-complement integer: the int64 and its
    sign extension, laid out little-endian.
    """
    # The values buffer read directly (slots under nulls hold arbitrary values; the validity
    # bitmap is reused): no copy, and no pyarrow scalar, whose creation imports pandas (~40 MB).
    ints = ints.cast(pa.int64()) if ints.type != pa.int64() else ints
    values = np.frombuffer(ints.buffers()[1], dtype=np.int64)[ints.offset : ints.offset + len(ints)]
    pairs = np.empty((len(values), 2), dtype=np.int64)
    pairs[:, 0] = values
    pairs[:, 1] = values >> 63
    validity = pc.is_valid(ints).buffers()[1] if ints.null_count else None
    return pa.Array.from_buffers(dtype, len(values), [validity, pa.py_buffer(pairs)], null_count=ints.null_count)


# -- catalog queries (psycopg, %s parameters) ------------------------------------------------

RELATIONS_SQL = """
SELECT n.nspname, c.relname, c.oid
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
  AND c.relname <> %s
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname, c.relname
"""

COLUMNS_SQL = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), t.typname,
       CASE WHEN t.typcategory = 'A' THEN et.typname END, a.atttypmod, a.attnotnull
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

PRIMARY_KEYS_SQL = """
SELECT i.indrelid, a.attname
FROM (
    SELECT DISTINCT ON (x.indrelid) x.indrelid, x.indkey
    FROM pg_index x
    WHERE x.indrelid = ANY(%s) AND x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM unnest(x.indkey) AS c(attnum)
          JOIN pg_attribute n ON n.attrelid = x.indrelid AND n.attnum = c.attnum
          WHERE NOT n.attnotnull)
    ORDER BY x.indrelid, x.indisprimary DESC, x.indnatts, x.indexrelid
) i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
ORDER BY i.indrelid, k.ord
"""
"""Each table's key: its primary key, else its smallest unique index over NOT NULL columns (a unique
index that allows NULLs does not identify a row)."""

UNIQUE_INDEXES_SQL = """
SELECT array_agg(a.attname::text ORDER BY a.attname)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) AS k(attnum)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid
"""

TABLE_OID_SQL = """
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""


def dollar(query: str) -> str:
    """psycopg's ``%s`` placeholders as ADBC's ``$n``."""
    parts = query.replace("%%", "\0").split("%s")
    out = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        out += f"${i}" + part
    return out.replace("\0", "%")


def catalog_rows(conn: Any, query: str, params: tuple) -> list[tuple]:
    """Run a catalog query on a psycopg cursor or an ``AdbcSession`` (they differ in placeholders; a
    session with ``dollar_params`` takes ``$n`` too)."""
    if isinstance(conn, AdbcSession) or getattr(conn, "dollar_params", False):
        return conn.fetchall(dollar(query), params)
    conn.execute(query, params)
    return list(conn.fetchall())


def table_columns(conn: Any, oids: list[int]) -> dict[int, list[PgColumn]]:
    """Columns of each relation (by oid), in table order."""
    out: dict[int, list[PgColumn]] = {oid: [] for oid in oids}
    for oid, name, sql_type, typname, elem, typmod, not_null in catalog_rows(conn, COLUMNS_SQL, (oids,)):
        out[oid].append(PgColumn(name, sql_type, typname, elem, typmod, not_null))
    return out


def primary_keys(conn: Any, oids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {oid: [] for oid in oids}
    for oid, name in catalog_rows(conn, PRIMARY_KEYS_SQL, (oids,)):
        out[oid].append(name)
    return out


def table_oid(conn: Any, schema: str, table: str) -> int | None:
    rows = catalog_rows(conn, TABLE_OID_SQL, (schema, table))
    return rows[0][0] if rows else None


# -- Arrow -> PostgreSQL (writing) -----------------------------------------------------------


@dataclass
class WriteColumn:
    """How one Arrow field is shaped for ADBC and which column type it gets."""

    name: str
    ingest_type: pa.DataType  # what the batch column is cast to before COPY
    pg_type: str  # the column type to create (format_type() spelling)
    to_json: bool = False  # nested values serialised to JSON text first
    is_json: bool = False


def _json_ingest_type() -> pa.DataType:
    return pa.json_(pa.string())


def write_column(field: pa.Field) -> WriteColumn:
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if is_json_field(field) and (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)):
        return WriteColumn(field.name, _json_ingest_type(), "jsonb", is_json=True)
    scalar = _scalar_write_type(t)
    if scalar is not None:
        return WriteColumn(field.name, scalar[0], scalar[1])
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _scalar_write_type(t.value_type)
        if inner is not None and not pa.types.is_list(inner[0]):
            return WriteColumn(field.name, pa.list_(inner[0]), inner[1] + "[]")
    if isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.json":
        return WriteColumn(field.name, _json_ingest_type(), "jsonb", is_json=True)
    # structs, maps, nested lists, unions: stored as JSON documents
    return WriteColumn(field.name, _json_ingest_type(), "jsonb", to_json=True, is_json=True)


def _scalar_write_type(t: pa.DataType) -> tuple[pa.DataType, str] | None:
    if pa.types.is_boolean(t):
        return pa.bool_(), "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return pa.int16(), "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return pa.int32(), "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return pa.int64(), "bigint"
    if pa.types.is_uint64(t):
        return pa.decimal128(20, 0), "numeric(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return pa.float32(), "real"
    if pa.types.is_float64(t):
        return pa.float64(), "double precision"
    if pa.types.is_decimal(t) and t.precision <= _MAX_DECIMAL_PRECISION:
        return pa.decimal128(t.precision, t.scale), f"numeric({t.precision},{t.scale})"
    if pa.types.is_decimal(t):
        return pa.string(), "numeric"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t):
        return pa.string(), "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return pa.binary(), "bytea"
    if pa.types.is_date(t):
        return pa.date32(), "date"
    if pa.types.is_timestamp(t):
        if t.tz:
            return pa.timestamp("us", tz="UTC"), "timestamp with time zone"
        return pa.timestamp("us"), "timestamp without time zone"
    if pa.types.is_time(t):
        return pa.time64("us"), "time without time zone"
    if pa.types.is_duration(t):
        return pa.duration("us"), "interval"
    return None


def shape_column(col: pa.Array | pa.ChunkedArray, wc: WriteColumn) -> pa.Array:
    """Cast one batch column to what ADBC's COPY writer expects for ``wc``."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if isinstance(col.type, pa.BaseExtensionType):
        if col.type.extension_name == "arrow.json":
            return col if col.type == wc.ingest_type else pa.ExtensionArray.from_storage(wc.ingest_type, col.storage.cast(pa.string()))
        col = col.storage
    if wc.to_json:
        texts = [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in col.to_pylist()]
        return pa.ExtensionArray.from_storage(wc.ingest_type, pa.array(texts, pa.string()))
    if wc.is_json:
        storage = col if col.type == pa.string() else col.cast(pa.string())
        return pa.ExtensionArray.from_storage(wc.ingest_type, storage)
    if col.type != wc.ingest_type:
        safe = not (pa.types.is_timestamp(col.type) and col.type.unit == "ns")
        col = cast_keeping_infinity(col, wc.ingest_type, safe)
    if temporal(col.type):
        col = for_write(col, wc.name)
    return col


def same_type(table_type: str, wc: WriteColumn) -> bool:
    """True when ADBC can COPY ``wc``'s ingest type straight into a column of ``table_type``."""
    if table_type == wc.pg_type:
        return True
    if wc.is_json:
        return table_type == "json"
    if wc.pg_type == "text":
        return table_type.startswith("character varying")
    return False


# -- NUL characters ---------------------------------------------------------------------------

_JSON_NUL_ESCAPE = r"((?:^|[^\\])(?:\\\\)*)\\u0000"


def _may_hold(col: pa.Array, needle: bytes) -> bool:
    """A fast pre-check on the raw character buffer (memchr speed); False means certainly absent."""
    data = col.buffers()[2] if len(col.buffers()) > 2 else None
    if data is None or data.size == 0:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    if needle == b"\x00":
        return not raw.all()
    if not (raw == needle[0]).any():  # numpy scans without copying: most text has no backslash at all
        return False
    return data.to_pybytes().find(needle) != -1


def strip_nuls(col: pa.Array, is_json: bool) -> tuple[pa.Array, int]:
    """Remove U+0000 (and ``\\u0000`` JSON escapes), which PostgreSQL text and jsonb cannot store.

    Returns the cleaned column and how many values had one.  Columns without a
    NUL cost one scan of their character buffer.
    """
    ext_type = None
    if isinstance(col.type, pa.BaseExtensionType):
        ext_type, col = col.type, col.storage
    count = 0
    if pa.types.is_string(col.type):
        has_nul = _may_hold(col, b"\x00")
        has_escape = is_json and _may_hold(col, b"\\u0000")
        if has_nul or has_escape:
            hits = pc.match_substring(col, "\x00")
            if has_escape:
                hits = pc.or_(hits, pc.match_substring_regex(col, _JSON_NUL_ESCAPE))
            count = pc.sum(hits).as_py() or 0
        if count:
            col = pc.replace_substring(col, "\x00", "")
            # matches cannot overlap, so "\\u0000\\u0000" takes more than one pass
            while has_escape and pc.any(pc.match_substring_regex(col, _JSON_NUL_ESCAPE)).as_py():
                col = pc.replace_substring_regex(col, _JSON_NUL_ESCAPE, r"\1")
    elif pa.types.is_list(col.type) and pa.types.is_string(col.type.value_type) and _may_hold(col.values, b"\x00"):
        count = pc.sum(pc.match_substring(col.flatten(), "\x00")).as_py() or 0
        if count:
            values = [None if v is None else [None if s is None else s.replace("\x00", "") for s in v] for v in col.to_pylist()]
            col = pa.array(values, col.type)
    if ext_type is not None:
        col = pa.ExtensionArray.from_storage(ext_type, col)
    return col, count
