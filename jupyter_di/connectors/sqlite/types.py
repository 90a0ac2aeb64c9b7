"""SQLite as a source and a destination (stdlib ``sqlite3``, one database file).

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

The destination uses WAL mode (readers never block the writer, a crash
rolls back to the last commit) and ``BEGIN IMMEDIATE`` so a locked file is
reported before any work.  Module named ``sqlite_db`` to match ``duckdb_db``.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError, ConnectionFailed, DIError, SchemaMismatch
from . import catalog
from .base import INCREMENTAL, STATE_TABLE, ConfigField, ConnectorSpec, ReadRequest, Source, is_json_field, json_field
from .sql_dialect import (
    SQLITE_JSON_ARRAY,
    SqlFileDestination,
    conflict_clause,
    first_line,
    is_orderable,
    plan_select,
    quote_ident,
    render_select,
    resolve_path,
    sqlite_type,
)

CONFIG = [
    ConfigField("path", "path", required=True, description="The SQLite database file (relative to the working directory)."),
    ConfigField("timeout", "number", default=30, description="Seconds to wait for a lock held by another writer.", minimum=0, maximum=3600),
]

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
        element = column_kind("item", d[len(SQLITE_JSON_ARRAY):])
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
        return ColumnKind(
            pa.field(name, pa.timestamp("us")), _each(lambda v: _datetime(v, False)), lambda v: _timestamp_text(v, False)
        )
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


def _to_arrow(kind: ColumnKind, declared: str, values: Sequence[Any], stream: str) -> pa.Array:
    try:
        return pa.array(kind.convert(values) if kind.convert else list(values), kind.field.type)
    except (ValueError, TypeError, decimal.InvalidOperation, pa.ArrowException) as exc:
        raise SchemaMismatch(
            f"column {kind.field.name!r} is declared {declared or 'without a type'} but holds a value that is not "
            f"{kind.field.type} ({first_line(exc)}).",
            stream=stream,
            fix="clean the column, or deselect it.",
        ) from exc


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


# --------------------------------------------------------------------------- errors and connections


def _translate(path: str, exc: Exception) -> DIError | None:
    text = first_line(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return ConnectionFailed(
            f"the SQLite file {path} is locked by another connection ({text}).",
            fix="let the other writer finish (or close it), or raise config.timeout.",
        )
    if "readonly" in low or "read-only" in low or "unable to open" in low or "disk i/o" in low:
        return ConnectionFailed(
            f"cannot write the SQLite file {path} ({text}).",
            fix="check that the file and its folder are writable by this process.",
        )
    if "not a database" in low:
        return ConnectionFailed(f"{path} is not a SQLite database ({text}).", fix="point config.path at a SQLite file.")
    if isinstance(exc, (sqlite3.IntegrityError, OverflowError, sqlite3.InterfaceError)):
        return SchemaMismatch(
            f"the rows do not fit the SQLite table: {text}",
            fix="check the column types and unique_constraints.",
        )
    return None


def _open(path: str, timeout: float, *, read_only: bool) -> sqlite3.Connection:
    """An autocommit-mode connection (transactions are explicit) that may cross threads."""
    target = f"file:{urllib.parse.quote(path)}?mode={'ro' if read_only else 'rwc'}"
    try:
        con = sqlite3.connect(target, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
        con.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return con
    except sqlite3.Error as exc:
        err = _translate(path, exc) or ConnectionFailed(f"cannot open the SQLite file {path}: {first_line(exc)}")
        raise err from exc


class _SQLiteConnector:
    """Config handling shared by the source and the destination."""

    config: dict[str, Any]

    @property
    def timeout(self) -> float:
        value = self.config.get("timeout")
        return 30.0 if value is None else float(value)


class SQLiteSource(_SQLiteConnector, Source):
    """Streams SQLite tables and views as Arrow batches, typed by their declared types."""

    name = "sqlite"
    config_schema = CONFIG

    def _open(self) -> tuple[str, sqlite3.Connection]:
        path = resolve_path(self.config, must_exist=True, system="SQLite")
        return path, _open(path, self.timeout, read_only=True)

    def check(self) -> None:
        self._open()[1].close()

    @staticmethod
    def _relations(con: sqlite3.Connection) -> list[str]:
        rows = con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name != ? ORDER BY name",
            [STATE_TABLE],
        ).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def _columns(con: sqlite3.Connection, table: str) -> list[tuple[str, str, int]]:
        """(name, declared type, primary-key position) per column, in table order."""
        return [tuple(r) for r in con.execute("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid", [table])]

    def discover(self, streams: list[str] | None = None) -> dict[str, Any]:
        _, con = self._open()
        try:
            entries = []
            for table in self._relations(con):
                if streams is not None and table not in streams:
                    continue
                cols = self._columns(con, table)
                fields = [column_kind(n, d).field for n, d, _ in cols]
                entries.append(
                    catalog.stream_entry(
                        table,
                        {f.name: catalog.json_schema_for_arrow(f.type, f) for f in fields},
                        key_properties=[n for n, _, pk in sorted(cols, key=lambda c: c[2]) if pk],
                        valid_replication_keys=[f.name for f in fields if is_orderable(f)],
                        sql_datatypes={n: d for n, d, _ in cols},
                        extra_stream_metadata={"table-name": table},
                    )
                )
            return {"streams": entries}
        finally:
            con.close()

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        stream = request.settings.stream
        path, con = self._open()
        try:
            tables = self._relations(con)
            table = stream if stream in tables else next((t for t in tables if t.lower() == stream.lower()), None)
            if table is None:
                raise ConfigError(
                    f"no table or view {stream!r} in the SQLite file {path}.",
                    stream=stream,
                    fix="pick a stream that discover lists.",
                )
            declared = {n: d for n, d, _ in self._columns(con, table)}
            kinds = {n: column_kind(n, d) for n, d in declared.items()}
            plan = plan_select(request, list(declared))
            if request.settings.replication_method == INCREMENTAL:
                valid = [n for n, kind in kinds.items() if is_orderable(kind.field)]
                catalog.check_replication_keys(list(request.settings.bookmark_properties), valid, {n: d or "untyped" for n, d in declared.items()}, stream)

            def column_expr(column: str) -> str:
                cast = kinds[column].sort_cast
                return f"CAST({quote_ident(column)} AS {cast})" if cast else quote_ident(column)

            def bind(column: str, value: Any) -> tuple[str, Any]:
                try:
                    return "?", kinds[column].bookmark(value)
                except (ValueError, TypeError) as exc:
                    raise ConfigError(
                        f"bookmark {column}={value!r} does not fit the column's type {declared[column]}.",
                        stream=stream,
                        fix="reset the stream's state or set a valid bookmark.",
                    ) from exc

            sql, params = render_select(quote_ident(table), plan, column_expr, bind)
            nulls = plan.count_null_cursors(con, quote_ident(table))
            if nulls is not None:
                request.stats["null_cursor_rows"] = nulls
            schema = pa.schema([kinds[c].field for c in plan.columns])
            cursor = con.execute(sql, params)
        except BaseException:
            con.close()
            raise
        batches = _batches(cursor, con, [kinds[c] for c in plan.columns], [declared[c] for c in plan.columns], schema, request.batch_size, stream)
        return pa.RecordBatchReader.from_batches(schema, batches)


def _batches(
    cursor: sqlite3.Cursor,
    con: sqlite3.Connection,
    kinds: list[ColumnKind],
    declared: list[str],
    schema: pa.Schema,
    batch_size: int,
    stream: str,
) -> Iterator[pa.RecordBatch]:
    """Fetch ``batch_size`` rows at a time and convert them column-wise; closes the connection."""
    try:
        while True:
            rows = cursor.fetchmany(batch_size)
            if not rows:
                return
            columns = list(zip(*rows))
            arrays = [_to_arrow(k, d, col, stream) for k, d, col in zip(kinds, declared, columns)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        con.close()


class SQLiteDestination(_SQLiteConnector, SqlFileDestination):
    """Writes Arrow batches into SQLite tables with executemany, rows and state in one transaction."""

    name = "sqlite"
    config_schema = CONFIG
    system = "SQLite"
    state_json_type = "TEXT"
    begin_sql = "BEGIN IMMEDIATE"

    def _path(self) -> str:
        return resolve_path(self.config, must_exist=False, system="SQLite")

    def _connect(self) -> sqlite3.Connection:
        return _open(self._path(), self.timeout, read_only=False)

    def check(self) -> None:
        self._connect().close()

    def _setup(self, con: sqlite3.Connection, schema: pa.Schema) -> None:
        con.execute("PRAGMA journal_mode=WAL").fetchall()
        con.execute("PRAGMA synchronous=NORMAL")

    def _table_sql(self, table: str) -> str:
        return quote_ident(table)

    def _table_columns(self, con: sqlite3.Connection, table: str) -> list[str] | None:
        rows = con.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", [table]).fetchall()
        return [r[0] for r in rows] or None

    def _has_unique(self, con: sqlite3.Connection, table: str, keys: list[str]) -> bool:
        want = {k.lower() for k in keys}
        pk = {r[0].lower() for r in con.execute("SELECT name FROM pragma_table_info(?) WHERE pk > 0", [table])}
        if pk == want:
            return True
        for index, unique in con.execute('SELECT name, "unique" FROM pragma_index_list(?)', [table]).fetchall():
            cols = {r[0].lower() for r in con.execute("SELECT name FROM pragma_index_info(?)", [index]) if r[0]}
            if unique and cols == want:
                return True
        return False

    def _column_type(self, field: pa.Field) -> str:
        return sqlite_type(field.type, field)

    def _insert(self, con: sqlite3.Connection, table: str, batch: pa.RecordBatch, keys: list[str], method: str) -> None:
        names = batch.schema.names
        columns = [sqlite_values(batch.column(i), batch.schema.field(i)) for i in range(batch.num_columns)]
        con.executemany(
            f"INSERT INTO {quote_ident(table)} ({', '.join(quote_ident(n) for n in names)}) "
            f"VALUES ({', '.join('?' * len(names))})" + conflict_clause(keys, names, method, getattr(self, "_null_on_update", ())),
            zip(*columns),
        )

    def _translate(self, exc: Exception, stream: str) -> DIError | None:
        if isinstance(exc, (sqlite3.Error, OverflowError)):
            return _translate(self._path(), exc)
        return None


SPEC = ConnectorSpec(
    name="sqlite",
    title="SQLite",
    config_schema=CONFIG,
    source=SQLiteSource,
    destination=SQLiteDestination,
    description="A SQLite database file (stdlib sqlite3): typed by declared column types; transactional writes in WAL mode.",
)
