"""SQL shapes shared by the embedded-database connectors (DuckDB and SQLite).

Why one module: both engines speak the same SQL for everything a connector
needs beyond moving bytes (double-quoted identifiers, ``?`` parameters,
``INSERT ... ON CONFLICT (keys) DO UPDATE SET c = excluded.c / DO NOTHING``,
``NULLS LAST``), and both are transactional files where the rows and the
``_jupyter_di_state`` row commit together.  So identifier quoting, the
Arrow->SQL type maps, the select/bookmark plan and the whole write loop
(create/evolve the table, replace/append/upsert, state in the same transaction,
``on_commit`` after each commit) live here once; each connector module only
supplies how to open its file, read its catalog and push one batch.
"""
from __future__ import annotations

import json
import math
import os
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError, DIError, SchemaMismatch
from ._shared.arrow_build import int64_array
from ._shared.commit_window import ChunkSource, CommitWindow
from .base import (
    FULL_TABLE,
    INCREMENTAL,
    STATE_TABLE,
    Chunk,
    CommitCallback,
    Destination,
    ReadRequest,
    StreamSettings,
    WriteRequest,
    WriteResult,
    internal_name,
    is_json_field,
)


# --------------------------------------------------------------------------- names


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier with embedded quotes doubled (any name is safe)."""
    return '"' + str(name).replace('"', '""') + '"'


def qualify(schema: str | None, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)


def resolve_path(config: dict[str, Any], *, must_exist: bool, system: str) -> str:
    """The absolute database path from ``config['path']`` (relative to the working directory).

    A source needs the file itself; a destination needs its folder (the file is
    created).  Either missing is a ConfigError naming the path, never a new
    empty database created by accident.
    """
    raw = config.get("path")
    if not raw or not isinstance(raw, (str, os.PathLike)):
        raise ConfigError(f"the {system} connector needs a `path`.", fix=f"set config.path to the {system} database file.")
    path = os.path.abspath(os.path.expanduser(os.fspath(raw)))
    if must_exist and not os.path.isfile(path):
        raise ConfigError(
            f"the {system} database file {path} does not exist.",
            fix="check config.path (relative paths are resolved against the working directory).",
        )
    folder = os.path.dirname(path)
    if not must_exist and not os.path.isdir(folder):
        raise ConfigError(
            f"the folder of the {system} database {path} does not exist.",
            fix=f"create the folder {folder} or fix config.path.",
        )
    return path


# --------------------------------------------------------------------------- types


def is_orderable(field: pa.Field) -> bool:
    """Whether a column can be a replication key (a total order that SQL compares)."""
    t = field.type
    if is_json_field(field):
        return False
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_temporal(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    )


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


# SQLite keeps lists of scalars as JSON text under a declared type that names the
# element type, so a SQLite source can give the list back (see sqlite_db).
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
    Timestamps are TEXT in one fixed ISO-8601 form (see ``sqlite_db``).
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


# --------------------------------------------------------------------------- reading


@dataclass
class SelectPlan:
    """What one read selects: output columns, sort order and the inclusive lower bound."""

    columns: list[str]
    order_by: list[str]
    bookmark: list[tuple[str, Any]]
    limit: int | None
    null_columns: list[str] = field(default_factory=list)
    """The bookmark columns (rows with a NULL in one cannot be tracked by a bookmark)."""
    resync_nulls: bool = False
    """``null_cursor: resync``: rows with a NULL bookmark column pass the bound too."""

    def count_null_cursors(self, con: Any, table_sql: str) -> int | None:
        """Rows a bookmark bound leaves out because a bookmark column is NULL (for the run's report)."""
        if not self.bookmark or self.resync_nulls or not self.null_columns:
            return None
        where = " OR ".join(f"{quote_ident(c)} IS NULL" for c in self.null_columns)
        return int(con.execute(f"SELECT count(*) FROM {table_sql} WHERE {where}").fetchall()[0][0])


def plan_select(request: ReadRequest, table_columns: list[str]) -> SelectPlan:
    """Check the requested columns against the table and plan the read.

    Selected columns come out in the table's order.  For INCREMENTAL reads the
    bookmark and key columns are always included (Singer's ``automatic``
    inclusion): the sync engine needs them to compute the next bookmark.
    """
    s = request.settings
    by_name = set(table_columns)

    def require(names: list[str], what: str, fix: str) -> None:
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(
                f"{what} {', '.join(repr(m) for m in missing)} not in the table "
                f"(it has {', '.join(repr(c) for c in table_columns)}).",
                stream=s.stream,
                fix=fix,
            )

    wanted = list(table_columns) if s.columns is None else list(s.columns)
    require(wanted, "selected column(s)", "select existing columns (run discover again if the table changed).")
    order_by: list[str] = []
    bookmark: list[tuple[str, Any]] = []
    if s.replication_method == INCREMENTAL:
        if not s.bookmark_properties:
            raise ConfigError(
                "INCREMENTAL replication needs bookmark_properties.",
                stream=s.stream,
                fix="set bookmark_properties to an ever-increasing column such as updated_at, or use FULL_TABLE.",
            )
        require(s.bookmark_properties, "bookmark column(s)", "set bookmark_properties to existing columns.")
        require(s.key_properties, "key column(s)", "set key_properties to existing columns.")
        order_by = list(dict.fromkeys([*s.bookmark_properties, *s.key_properties]))
        wanted = [*wanted, *order_by]
        for name in s.bookmark_properties:
            if not request.bookmark or name not in request.bookmark or request.bookmark[name] is None:
                break
            bookmark.append((name, request.bookmark[name]))
    chosen = set(wanted)
    return SelectPlan(
        [c for c in table_columns if c in chosen], order_by, bookmark, request.limit,
        null_columns=list(s.bookmark_properties) if s.replication_method == INCREMENTAL else [],
        resync_nulls=s.null_cursor == "resync",
    )


def render_select(
    table_sql: str,
    plan: SelectPlan,
    column_expr: Callable[[str], str],
    bind: Callable[[str, Any], tuple[str, Any]],
) -> tuple[str, list[Any]]:
    """SELECT text and parameters for a plan.

    ``column_expr(col)`` is the SQL a column compares and sorts by (usually the
    quoted name); ``bind(col, json_value)`` gives the placeholder SQL (e.g.
    ``CAST(? AS TIMESTAMPTZ)``) and the parameter value.  The bound is the
    inclusive row comparison ``(b1, b2) >= (v1, v2)`` written out
    lexicographically, which both engines can use with an index.
    """
    params: list[Any] = []
    sql = f"SELECT {', '.join(quote_ident(c) for c in plan.columns)} FROM {table_sql}"
    if plan.bookmark:
        parts = [(column_expr(c), *bind(c, v)) for c, v in plan.bookmark]

        def ge(i: int) -> str:
            expr, placeholder, value = parts[i]
            if i == len(parts) - 1:
                params.append(value)
                return f"{expr} >= {placeholder}"
            params.extend([value, value])
            return f"({expr} > {placeholder} OR ({expr} = {placeholder} AND {ge(i + 1)}))"

        bound = ge(0)
        if plan.resync_nulls and plan.null_columns:
            bound = f"({bound} OR " + " OR ".join(f"{quote_ident(c)} IS NULL" for c in plan.null_columns) + ")"
        sql += f" WHERE {bound}"
    if plan.order_by:
        sql += " ORDER BY " + ", ".join(f"{column_expr(c)} ASC NULLS LAST" for c in plan.order_by)
    if plan.limit is not None:
        sql += " LIMIT ?"
        params.append(int(plan.limit))
    return sql, params


# --------------------------------------------------------------------------- writing


def conflict_clause(keys: list[str], columns: list[str], method: str, null_columns: Iterable[str] = ()) -> str:
    """`` ON CONFLICT (keys) DO UPDATE SET ...`` (new row wins) or ``DO NOTHING`` (existing kept).

    ``null_columns`` are table columns the stream no longer has (dropped at the
    source): an updated row gets NULL there, so it equals the source row.
    """
    if not keys:
        return ""
    lowered = {k.lower() for k in keys}
    updates = [c for c in columns if c.lower() not in lowered]
    target = ", ".join(quote_ident(k) for k in keys)
    if method == "IGNORE" or not updates:
        return f" ON CONFLICT ({target}) DO NOTHING"
    sets = [f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in updates]
    sets += [f"{quote_ident(c)} = NULL" for c in null_columns if c.lower() not in lowered]
    return f" ON CONFLICT ({target}) DO UPDATE SET {', '.join(sets)}"


def dedupe_on_keys(batch: pa.RecordBatch, keys: list[str], keep_last: bool) -> pa.RecordBatch:
    """One row per key within a batch (the last for UPDATE, the first for IGNORE).

    Why: a single set-based INSERT cannot upsert the same key twice, while a
    stream may carry several versions of a row in one batch.
    """
    if batch.num_rows < 2:
        return batch
    if len(keys) == 1 and pc.count_distinct(batch.column(keys[0]), mode="all").as_py() == batch.num_rows:
        return batch  # the common case, a hash count instead of a group-by
    table = pa.Table.from_batches([batch]).select(keys)
    table = table.append_column("__jdi_row", int64_array(np.arange(batch.num_rows)))
    agg = "max" if keep_last else "min"
    grouped = table.group_by(keys, use_threads=False).aggregate([("__jdi_row", agg)])
    if grouped.num_rows == batch.num_rows:
        return batch
    rows = grouped.column(f"__jdi_row_{agg}").combine_chunks()
    return batch.take(pc.take(rows, pc.sort_indices(rows)))


def dump_state(state: Any) -> str:
    return json.dumps(state, default=str, separators=(",", ":"))


class SqlFileDestination(Destination):
    """The write loop shared by DuckDB and SQLite; subclasses push batches and read their catalog.

    One connection and one transaction per commit window: the table is
    created/evolved, FULL_TABLE deletes the old rows, batches are inserted
    (upserted on ``unique_constraints``), and the state row is upserted into
    ``_jupyter_di_state`` before COMMIT.  FULL_TABLE is one transaction from
    DELETE to the last batch, so a failure keeps the old rows and the old
    state; other methods commit every ``commit_every_rows`` rows.
    """

    transactional: ClassVar[bool] = True
    staged_full_table: ClassVar[bool] = False
    """FULL_TABLE loads into a committed staging table first (bounds memory where one
    huge transaction would not), then replaces the rows in one short transaction."""
    key_constraints: ClassVar[bool] = True
    """Tables get a primary key / unique index on ``unique_constraints`` (upserts need it)."""
    bulk_insert: ClassVar[bool] = False
    """The engine inserts a whole commit window in one statement (``_insert_stream``)."""
    commit_every_rows: ClassVar[int] = 100_000
    commit_every_seconds: ClassVar[float] = 60.0
    commit_every_bytes: ClassVar[float] = math.inf
    """Upsert windows are also capped by Arrow bytes (wide rows): their rows are staged first."""
    system: ClassVar[str] = ""
    state_json_type: ClassVar[str] = "TEXT"
    begin_sql: ClassVar[str] = "BEGIN"

    # ---- hooks

    @abstractmethod
    def _connect(self) -> Any:
        """A new connection (closed by the caller)."""

    @abstractmethod
    def _table_sql(self, table: str) -> str:
        """The quoted, schema-qualified table name."""

    @abstractmethod
    def _table_columns(self, con: Any, table: str) -> list[str] | None:
        """The table's column names, or None when it does not exist."""

    @abstractmethod
    def _has_unique(self, con: Any, table: str, keys: list[str]) -> bool:
        """Whether a primary key / unique index covers exactly ``keys``."""

    @abstractmethod
    def _column_type(self, field: pa.Field) -> str: ...

    @abstractmethod
    def _insert(self, con: Any, table: str, batch: pa.RecordBatch, keys: list[str], method: str) -> None:
        """Insert (or upsert on ``keys``) one batch inside the open transaction."""

    def _insert_stream(self, con: Any, table: str, window: CommitWindow) -> None:
        """Insert a whole window with one statement (engines with ``bulk_insert``)."""
        raise NotImplementedError

    def _upsert_stream(self, con: Any, table: str, window: CommitWindow, keys: list[str], method: str) -> bool:
        """Upsert a whole window with set-based statements; False when the engine cannot here."""
        return False

    def _translate(self, exc: Exception, stream: str) -> DIError | None:
        """A user-fixable engine error as a DIError, or None to re-raise as is."""
        return None

    def _setup(self, con: Any, schema: pa.Schema) -> None:
        """Per-connection setup done outside transactions (schemas, pragmas); ``schema`` is the stream's."""

    def _after_staging_commit(self, con: Any) -> None:
        """Hook after each commit of staging rows (DuckDB checkpoints to free its memory)."""

    def _teardown(self, con: Any) -> None:
        """Undo per-connection settings before the connection closes (shared engine instances)."""

    # ---- contract

    def write(
        self, request: WriteRequest, chunks: Iterable[Chunk], on_commit: CommitCallback | None = None
    ) -> WriteResult:
        s = request.settings
        con = self._connect()
        rows = 0
        reported: int | None = None
        state: Any = None
        try:
            try:
                self._setup(con, request.schema)
                if request.state_key:
                    self._ensure_state_table(con)
                con.execute(self.begin_sql)
                known = self._prepare_table(con, s, request.schema)
                self._null_on_update = [known[c.lower()] for c in request.dropped_columns if c.lower() in known and c not in request.schema.names]
                table_sql = self._table_sql(s.table_name)
                full = s.replication_method == FULL_TABLE
                staged = full and self.staged_full_table
                insert_into = s.table_name
                if staged:
                    # Load into a staging copy with periodic commits (bounded memory), then
                    # replace the table's rows from it in one short transaction.
                    insert_into = internal_name("staging", s.table_name)
                    con.execute(f"DROP TABLE IF EXISTS {self._table_sql(insert_into)}")
                    con.execute(f"CREATE TABLE {self._table_sql(insert_into)} AS SELECT * FROM {table_sql} LIMIT 0")
                    con.execute("COMMIT")
                    con.execute(self.begin_sql)
                elif full:
                    con.execute(f"DELETE FROM {table_sql}")
                source = ChunkSource(iter(chunks))
                limit = self.commit_every_rows if (staged or not full) else math.inf
                seconds = self.commit_every_seconds if (staged or not full) else math.inf
                nbytes = self.commit_every_bytes if (s.unique_constraints and not full) else math.inf
                while not source.exhausted:
                    window = CommitWindow(source, limit, seconds, nbytes)
                    if not window.empty:
                        self._write_window(con, s, known, insert_into, window, staged)
                    rows += window.rows
                    if window.state is not None:
                        state = window.state
                    if window.empty or window.last:
                        break  # the final commit below
                    if staged:
                        con.execute("COMMIT")  # staging rows only: no state, nothing visible yet
                        self._after_staging_commit(con)
                        con.execute(self.begin_sql)
                    elif not full:
                        self._commit(con, request.state_key, state)
                        if on_commit:
                            on_commit(rows, state)
                        con.execute(self.begin_sql)
                        reported = rows
                if staged:
                    con.execute("COMMIT")
                    con.execute(self.begin_sql)
                    self._replace_from_staging(con, s, insert_into)
                self._commit(con, request.state_key, state)
            except BaseException:
                try:
                    con.execute("ROLLBACK")
                except Exception:
                    pass
                raise
        except Exception as exc:
            if isinstance(exc, DIError):
                raise exc.with_context(stream=s.stream)
            err = self._translate(exc, s.stream)
            if err is None:
                raise
            raise err.with_context(stream=s.stream) from exc
        finally:
            try:
                self._teardown(con)
            finally:
                con.close()
        if on_commit and reported != rows:
            on_commit(rows, state)
        return WriteResult(rows_written=rows, state=state)

    def _write_window(self, con: Any, s: StreamSettings, known: dict[str, str], table: str, window: CommitWindow, staged: bool) -> None:
        """Insert one commit window: one statement over all its batches where the engine scans a
        stream (and no per-batch de-duplication is needed), else batch by batch."""
        assert window.schema is not None
        keys = _batch_keys(window.schema, s)
        if not staged:
            self._add_columns(con, s, known, window.schema)
        try:
            if self.bulk_insert and (staged or not keys):
                self._insert_stream(con, table, window)
            elif self.bulk_insert and self._upsert_stream(con, table, window, keys, s.unique_conflict_method):
                pass
            else:
                for batch in window.batches():
                    self._insert(con, table, batch, [] if staged else keys, s.unique_conflict_method)
        except Exception as exc:
            if window.error is not None and window.error is not exc:
                raise window.error from None  # the source failed mid-statement: its error, not the engine's
            raise

    def load_state(self, state_key: str) -> dict[str, Any] | None:
        con = self._connect()
        try:
            if self._table_columns(con, STATE_TABLE) is None:
                return None
            row = con.execute(
                f"SELECT state FROM {self._table_sql(STATE_TABLE)} WHERE state_key = ?", [state_key]
            ).fetchall()
        finally:
            con.close()
        return json.loads(row[0][0]) if row and row[0][0] is not None else None

    def clear_state(self, state_key: str) -> None:
        con = self._connect()
        try:
            if self._table_columns(con, STATE_TABLE) is not None:
                con.execute(f"DELETE FROM {self._table_sql(STATE_TABLE)} WHERE state_key = ?", [state_key])
        finally:
            con.close()

    # ---- steps

    def _replace_from_staging(self, con: Any, s: StreamSettings, staging: str) -> None:
        """Inside the final transaction: the table's rows become the staging table's rows."""
        table_sql, staging_sql = self._table_sql(s.table_name), self._table_sql(staging)
        names = self._table_columns(con, staging) or []
        cols = ", ".join(quote_ident(n) for n in names)
        con.execute(f"DELETE FROM {table_sql}")
        con.execute(f"INSERT INTO {table_sql} ({cols}) SELECT {cols} FROM {staging_sql}")
        con.execute(f"DROP TABLE {staging_sql}")

    def _commit(self, con: Any, state_key: str | None, state: Any) -> None:
        if state_key and state is not None:
            con.execute(
                f"INSERT INTO {self._table_sql(STATE_TABLE)} (state_key, state, updated_at) "
                "VALUES (?, ?, CURRENT_TIMESTAMP) ON CONFLICT (state_key) DO UPDATE SET "
                "state = excluded.state, updated_at = excluded.updated_at",
                [state_key, dump_state(state)],
            )
        con.execute("COMMIT")

    def _ensure_state_table(self, con: Any) -> None:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table_sql(STATE_TABLE)} (state_key TEXT PRIMARY KEY, "
            f"state {self.state_json_type}, updated_at TIMESTAMP)"
        )

    def _prepare_table(self, con: Any, s: StreamSettings, schema: pa.Schema) -> dict[str, str]:
        """Create or evolve the table; returns its columns keyed by lower-cased name.

        Both engines compare identifiers case-insensitively, so "ID" and "id"
        are one column; the stored spelling is the first one written.
        """
        table, keys = s.table_name, list(s.unique_constraints)
        existing = self._table_columns(con, table)
        if existing is None:
            missing = [k for k in keys if k.lower() not in {n.lower() for n in schema.names}]
            if missing:
                raise ConfigError(
                    f"unique_constraints {missing} are not columns of the stream.",
                    stream=s.stream,
                    fix="set unique_constraints to columns the stream has.",
                )
            if not len(schema):
                raise SchemaMismatch(
                    f"cannot create table {table!r} without columns.", stream=s.stream, fix="send at least one column."
                )
            cols = ", ".join(f"{quote_ident(f.name)} {self._column_type(f)}" for f in schema)
            pk = f", PRIMARY KEY ({', '.join(quote_ident(k) for k in keys)})" if keys and self.key_constraints else ""
            con.execute(f"CREATE TABLE {self._table_sql(table)} ({cols}{pk})")
            return {n.lower(): n for n in schema.names}
        known = {n.lower(): n for n in existing}
        self._add_columns(con, s, known, schema)
        if keys and self.key_constraints and not self._has_unique(con, table, keys):
            missing = [k for k in keys if k.lower() not in known]
            if missing:
                raise ConfigError(
                    f"unique_constraints {missing} are not columns of table {table!r}.",
                    stream=s.stream,
                    fix="set unique_constraints to existing columns.",
                )
            index = quote_ident(internal_name("unique", table, *keys))
            target = ", ".join(quote_ident(k) for k in keys)
            try:
                con.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {self._table_sql(table)} ({target})")
            except Exception as exc:
                raise SchemaMismatch(
                    f"table {table!r} has no unique index on {keys} and one cannot be created ({first_line(exc)}).",
                    stream=s.stream,
                    fix="remove the duplicate rows on these columns, or change unique_constraints.",
                ) from exc
        return known

    def _add_columns(self, con: Any, s: StreamSettings, known: dict[str, str], schema: pa.Schema) -> None:
        new = [f for f in schema if f.name.lower() not in known]
        if not new:
            return
        names = [f.name for f in new]
        if not s.auto_add_new_fields:
            raise SchemaMismatch(
                f"the stream has column(s) {', '.join(repr(n) for n in names)} that table "
                f"{s.table_name!r} does not have.",
                stream=s.stream,
                fix="set auto_add_new_fields: true, or deselect these columns.",
            )
        for f in new:
            con.execute(f"ALTER TABLE {self._table_sql(s.table_name)} ADD COLUMN {quote_ident(f.name)} {self._column_type(f)}")
            known[f.name.lower()] = f.name


def _batch_keys(schema: pa.Schema, s: StreamSettings) -> list[str]:
    """``unique_constraints`` spelled as the batch spells them (identifiers match case-insensitively)."""
    names = {n.lower(): n for n in schema.names}
    missing = [k for k in s.unique_constraints if k.lower() not in names]
    if missing:
        raise SchemaMismatch(
            f"the rows lack the unique_constraints column(s) {', '.join(repr(m) for m in missing)}.",
            stream=s.stream,
            fix="select these columns in the source, or change unique_constraints.",
        )
    return [names[k.lower()] for k in s.unique_constraints]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
