"""DuckDB as a source and a destination (one database file).

Why Arrow end to end: DuckDB scans a registered Arrow batch natively, so the
destination writes with one set-based ``INSERT ... SELECT`` per batch and no
Python per row, and the source streams ``con.sql(...).to_arrow_reader()``.
The shared SQL shapes and the transactional write loop are in ``sql_dialect``.

Timestamps with a time zone are read in UTC (the session time zone is set to
UTC).  DuckDB compares identifiers case-insensitively, so two columns that
differ only in case cannot live in one table.  Module named ``duckdb_db`` so it
does not shadow the ``duckdb`` package.
"""
from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

import duckdb
import pyarrow as pa

from ..errors import ConfigError, ConnectionFailed, DIError, SchemaMismatch
from . import catalog
from ._shared.commit_window import CommitWindow
from .base import INCREMENTAL, INTERNAL_PREFIX, STATE_TABLE, ConfigField, ConnectorSpec, ReadRequest, Source, StreamSettings, json_field
from .sql_dialect import (
    SqlFileDestination,
    conflict_clause,
    dedupe_on_keys,
    duckdb_type,
    first_line,
    is_orderable,
    plan_select,
    qualify,
    quote_ident,
    render_select,
    resolve_path,
)

WRITE_MEMORY_LIMIT = "100MB"
"""DuckDB caches every block it writes up to its memory limit (80% of RAM by default), so a
multi-million-row load would otherwise grow the process by the size of the data."""
MEMORY_PER_COLUMN_MB = 2
"""DuckDB builds every column of a row group in its own blocks, per thread: measured, 101 text
columns need 150 MB to insert and 200 MB to upsert (100 MB fails with "Out of Memory"), so the
automatic limit is the larger of 100 MB and 2 MB per column."""

CONFIG = [
    ConfigField("path", "path", required=True, description="The DuckDB database file (relative to the working directory)."),
    ConfigField("schema", "string", default="main", description="The schema to read from / write to."),
    ConfigField(
        "memory_limit",
        "string",
        default="auto",
        description="Cap on DuckDB's buffer memory while writing (DuckDB spills beyond it): 'auto' is 100MB or 2MB per "
        "column if more; a size such as '512MB'; '' keeps DuckDB's own (80% of RAM).",
    ),
]
_MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)

# A catalog type name we may splice into CAST(? AS ...): letters, digits, spaces, (p,s).
_SAFE_TYPE = re.compile(r"^[A-Za-z0-9_ (),]+$")


def _connection_failed(path: str, exc: Exception) -> ConnectionFailed:
    text = first_line(exc)
    if "lock" in text.lower():
        return ConnectionFailed(
            f"the DuckDB file {path} is locked by another process ({text}).",
            fix="close the other program or notebook that has the file open, then run again.",
        )
    if "different configuration" in text:
        return ConnectionFailed(
            f"the DuckDB file {path} is already open in this process with other settings (e.g. read-only).",
            fix="close the other connection to this file first (or write to another file).",
        )
    return ConnectionFailed(
        f"cannot open the DuckDB file {path}: {text}",
        fix="check that the path is a DuckDB database you may read and write.",
    )


def open_duckdb(path: str, *, reading: bool) -> duckdb.DuckDBPyConnection:
    """A connection with the session in UTC.

    Both sides open the file in DuckDB's default mode, because DuckDB shares
    one instance per file *and configuration* within a process: a read-only
    source would lock out a destination (or a notebook's own connection) on
    the same file.  A source falls back to read-only when another process
    holds the file read-only.
    """
    try:
        try:
            con = duckdb.connect(path)
        except duckdb.IOException as exc:
            if not (reading and "lock" in str(exc).lower()):
                raise
            con = duckdb.connect(path, read_only=True)
        con.execute("SET SESSION TimeZone = 'UTC'")
        return con
    except duckdb.Error as exc:
        raise _connection_failed(path, exc) from exc


class DuckDBSource(Source):
    """Streams DuckDB tables and views as Arrow batches."""

    name = "duckdb"
    config_schema = CONFIG

    @property
    def schema(self) -> str:
        return self.config.get("schema") or "main"

    def _open(self) -> duckdb.DuckDBPyConnection:
        return open_duckdb(resolve_path(self.config, must_exist=True, system="DuckDB"), reading=True)

    def check(self) -> None:
        self._open().close()

    def _relations(self, con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
        rows = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary "
            "ORDER BY 1, 2"
        ).fetchall()
        return [(s, t) for s, t in rows if t != STATE_TABLE]

    def _resolve(self, con: duckdb.DuckDBPyConnection, stream: str) -> tuple[str, str]:
        """(schema, table) of a stream: a table of the configured schema, or ``schema.table``."""
        rels = self._relations(con)
        candidates = [(self.schema, stream)]
        if "." in stream:
            candidates.append(tuple(stream.split(".", 1)))  # type: ignore[arg-type]
        for want in candidates:
            for rel in rels:
                if rel == want:
                    return rel
        for want in candidates:
            for rel in rels:
                if (rel[0].lower(), rel[1].lower()) == (want[0].lower(), want[1].lower()):
                    return rel
        raise ConfigError(
            f"no table or view {stream!r} in schema {self.schema!r} of the DuckDB file.",
            stream=stream,
            fix="pick a stream that discover lists (qualify tables of other schemas as schema.table).",
        )

    def _schema_of(self, con: duckdb.DuckDBPyConnection, table_sql: str, columns: str = "*") -> tuple[pa.Schema, dict[str, str]]:
        """The Arrow schema DuckDB exports for a relation, JSON marked and time zones in UTC."""
        rel = con.sql(f"SELECT {columns} FROM {table_sql} LIMIT 0")
        sql_types = {name: str(t) for name, t in zip(rel.columns, rel.types)}
        reader = rel.to_arrow_reader()
        raw = reader.schema
        reader.read_all()
        fields = []
        for f in raw:
            if sql_types.get(f.name, "").upper() == "JSON":
                fields.append(json_field(f.name, f.type))
            elif pa.types.is_timestamp(f.type) and f.type.tz:
                fields.append(pa.field(f.name, pa.timestamp(f.type.unit, tz="UTC")))
            else:
                fields.append(f)
        return pa.schema(fields), sql_types

    def _primary_keys(self, con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[str]]:
        rows = con.execute(
            "SELECT schema_name, table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND constraint_type = 'PRIMARY KEY'"
        ).fetchall()
        return {(s, t): list(cols) for s, t, cols in rows}

    def discover(self, streams: list[str] | None = None) -> dict[str, Any]:
        con = self._open()
        try:
            keys = self._primary_keys(con)
            entries = []
            for schema, table in self._relations(con):
                stream = table if schema == self.schema else f"{schema}.{table}"
                if streams is not None and stream not in streams:
                    continue
                arrow, sql_types = self._schema_of(con, qualify(schema, table))
                entries.append(
                    catalog.stream_entry(
                        stream,
                        {f.name: catalog.json_schema_for_arrow(f.type, f) for f in arrow},
                        key_properties=keys.get((schema, table), []),
                        valid_replication_keys=[f.name for f in arrow if is_orderable(f)],
                        sql_datatypes=sql_types,
                        extra_stream_metadata={"schema-name": schema, "table-name": table},
                    )
                )
            return {"streams": entries}
        finally:
            con.close()

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        con = self._open()
        try:
            schema, table = self._resolve(con, request.settings.stream)
            table_sql = qualify(schema, table)
            full, sql_types = self._schema_of(con, table_sql)
            plan = plan_select(request, full.names)
            if request.settings.replication_method == INCREMENTAL:
                catalog.check_replication_keys(list(request.settings.bookmark_properties), [f.name for f in full if is_orderable(f)], sql_types, request.settings.stream)

            def bind(column: str, value: Any) -> tuple[str, Any]:
                sql_type = sql_types[column]
                return (f"CAST(? AS {sql_type})" if _SAFE_TYPE.match(sql_type) else "?"), value

            sql, params = render_select(table_sql, plan, quote_ident, bind)
            nulls = plan.count_null_cursors(con, table_sql)
            if nulls is not None:
                request.stats["null_cursor_rows"] = nulls
            target = pa.schema([full.field(c) for c in plan.columns])
            reader = con.sql(sql, params=params).to_arrow_reader(request.batch_size)
        except duckdb.Error as exc:
            con.close()
            raise ConfigError(f"cannot read {request.settings.stream!r}: {first_line(exc)}", stream=request.settings.stream) from exc
        except BaseException:
            con.close()
            raise
        return pa.RecordBatchReader.from_batches(target, _conformed(reader, target, con))


def _conformed(reader: pa.RecordBatchReader, target: pa.Schema, con: duckdb.DuckDBPyConnection) -> Iterator[pa.RecordBatch]:
    """The reader's batches under the target schema; closes the connection when done."""
    try:
        for batch in reader:
            if batch.schema.equals(target, check_metadata=False):
                yield pa.RecordBatch.from_arrays(batch.columns, schema=target)
            else:
                yield batch.cast(target)
    finally:
        con.close()


MIN_MEMORY_LIMIT_MB = 16
"""Below this DuckDB cannot write even a narrow table (a 1KB limit failed mid-write)."""

_SIZE_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class DuckDBDestination(SqlFileDestination):
    """Writes Arrow batches into DuckDB tables, rows and state in one transaction."""

    name = "duckdb"
    config_schema = CONFIG

    @staticmethod
    def check_config(config: dict[str, Any]) -> None:
        """A memory_limit DuckDB can write with, checked before the table or the state table is touched."""
        limit = config.get("memory_limit")
        if limit is None or str(limit).strip().lower() in ("auto", ""):
            return
        match = _MEMORY_LIMIT.match(str(limit))
        if not match:
            raise ConfigError(f"config 'memory_limit' {str(limit)[:40]!r} is not a size.", fix="write it like '256MB' or '2GB', or 'auto'.")
        number = float(str(limit).strip()[: match.start(2)].strip())
        if number * _SIZE_BYTES[match.group(2).lower()] < MIN_MEMORY_LIMIT_MB * 10**6:
            raise ConfigError(
                f"config 'memory_limit' {str(limit).strip()!r} is too small for DuckDB to write a table.",
                fix=f"use at least {MIN_MEMORY_LIMIT_MB}MB, or 'auto'.",
            )
    system = "DuckDB"
    state_json_type = "JSON"
    bulk_insert = True
    key_constraints = False
    """Upserts delete the window's keys and insert its rows (as dlt's delete-insert merge does),
    so tables need no primary key: DuckDB loads a table's whole key index into memory for
    ON CONFLICT (measured, 50k changed rows into 5M: 0.05 s against 0.77 s).  A table that
    already has a unique constraint on the keys keeps being upserted with ON CONFLICT."""
    commit_every_rows = 1_000_000
    """One INSERT per window of this many rows: DuckDB then writes whole row groups straight to the
    file in parallel (measured 5M rows: 8.5 s at 280 MB, against 13.8 s at 315 MB with one INSERT per
    50k-row batch); the window is also the checkpoint interval of an incremental stream."""
    commit_every_bytes = 256 * 1024 * 1024
    """DuckDB's scan keeps a statement's Arrow batches alive until it ends: a window of 1M rows of 3 KB
    held 0.9-2 GB (101 text columns); 64 MB still lets a narrow table's window reach ~900k rows."""
    staged_full_table = True  # one multi-million-row transaction keeps all its rows in memory

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._view = f"{INTERNAL_PREFIX}batch_{uuid.uuid4().hex}"

    @property
    def schema(self) -> str:
        return self.config.get("schema") or "main"

    def _connect(self) -> duckdb.DuckDBPyConnection:
        return open_duckdb(resolve_path(self.config, must_exist=False, system="DuckDB"), reading=False)

    def check(self) -> None:
        self._connect().close()

    def _replace_from_staging(self, con: duckdb.DuckDBPyConnection, s: StreamSettings, staging: str) -> None:
        """Swap the staging table in (no second copy of the rows); copy when something depends on the table."""
        if self._has_unique(con, s.table_name, list(s.unique_constraints)) if s.unique_constraints else False:
            super()._replace_from_staging(con, s, staging)  # keep the key constraint the table carries
            return
        try:
            con.execute(f"DROP TABLE {self._table_sql(s.table_name)}")
            con.execute(f"ALTER TABLE {self._table_sql(staging)} RENAME TO {quote_ident(s.table_name)}")
        except duckdb.Error:  # e.g. a view depends on the table: replace its rows instead
            con.execute("ROLLBACK")
            con.execute(self.begin_sql)
            super()._replace_from_staging(con, s, staging)

    def _setup(self, con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> None:
        self._unique_tables: dict[str, bool] = {}
        limit = self.config.get("memory_limit", "auto")
        if limit is None or str(limit).strip().lower() == "auto":
            limit = f"{max(int(WRITE_MEMORY_LIMIT[:-2]), MEMORY_PER_COLUMN_MB * len(schema))}MB"
        self._previous_limit = None
        if limit:
            if not _MEMORY_LIMIT.match(str(limit)):
                raise ConfigError(f"memory_limit {limit!r} is not a size.", fix="write it like '256MB' or '2GB'.")
            self._previous_limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            con.execute("SET memory_limit = ?", [str(limit).strip()])
        if self.schema != "main":
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")

    def _after_staging_commit(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            con.execute("CHECKPOINT")
        except duckdb.TransactionException:
            # another connection to this file is mid-transaction (a source block reading the same
            # file while this destination writes it): DuckDB checkpoints later by itself
            pass

    def _teardown(self, con: duckdb.DuckDBPyConnection) -> None:
        # The DuckDB instance may be shared with the notebook's own connections to this file.
        if getattr(self, "_previous_limit", None):
            con.execute("SET memory_limit = ?", [self._previous_limit])

    def _table_sql(self, table: str) -> str:
        return qualify(self.schema, table)

    def _table_columns(self, con: duckdb.DuckDBPyConnection, table: str) -> list[str] | None:
        rows = con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND lower(table_name) = lower(?) ORDER BY column_index",
            [self.schema, table],
        ).fetchall()
        return [r[0] for r in rows] or None

    def _has_unique(self, con: duckdb.DuckDBPyConnection, table: str, keys: list[str]) -> bool:
        rows = con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = current_database() "
            "AND schema_name = ? AND lower(table_name) = lower(?) AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
            [self.schema, table],
        ).fetchall()
        want = {k.lower() for k in keys}
        return any({c.lower() for c in cols} == want for (cols,) in rows)

    def _column_type(self, field: pa.Field) -> str:
        return duckdb_type(field.type, field)

    def _insert(self, con: duckdb.DuckDBPyConnection, table: str, batch: pa.RecordBatch, keys: list[str], method: str) -> None:
        if keys:
            batch = dedupe_on_keys(batch, keys, keep_last=method != "IGNORE")
        cols = ", ".join(quote_ident(n) for n in batch.schema.names)
        with self._registered(con, batch) as view:
            con.execute(
                f"INSERT INTO {self._table_sql(table)} ({cols}) SELECT {cols} FROM {view}"
                + conflict_clause(keys, batch.schema.names, method, getattr(self, "_null_on_update", ()))
            )

    def _insert_stream(self, con: duckdb.DuckDBPyConnection, table: str, window: CommitWindow) -> None:
        cols = ", ".join(quote_ident(n) for n in window.schema.names)
        with self._registered(con, window.reader()) as view:
            con.execute(f"INSERT INTO {self._table_sql(table)} ({cols}) SELECT {cols} FROM {view}")

    @contextmanager
    def _registered(self, con: duckdb.DuckDBPyConnection, data: Any) -> Iterator[str]:
        """``data`` (a batch or an Arrow stream) as a view for one statement; yields its quoted name."""
        con.register(self._view, data)
        try:
            yield quote_ident(self._view)
        finally:
            try:
                con.unregister(self._view)
            except duckdb.Error:
                pass  # an aborted transaction refuses it; the view dies with the connection

    def _upsert_stream(self, con: duckdb.DuckDBPyConnection, table: str, window: CommitWindow, keys: list[str], method: str) -> bool:
        if table not in self._unique_tables:
            self._unique_tables[table] = self._has_unique(con, table, keys)
        if self._unique_tables[table]:
            return False  # a key constraint: ON CONFLICT, batch by batch
        names = list(window.schema.names)
        lowered = {n.lower() for n in names}
        nulled = {c.lower() for c in getattr(self, "_null_on_update", ())}
        target = self._table_sql(table)
        stage, kept = quote_ident(f"{self._view}_stage"), quote_ident(f"{self._view}_kept")
        cols = ", ".join(quote_ident(n) for n in names)
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        partition = ", ".join(quote_ident(k) for k in keys)
        order = "ASC" if method == "IGNORE" else "DESC"  # IGNORE keeps a key's first row, UPDATE its last
        one_per_key = f"SELECT {cols} FROM {stage} QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY rowid {order}) = 1"
        with self._registered(con, window.reader()) as view:
            con.execute(f"CREATE TEMP TABLE {stage} AS SELECT {cols} FROM {view}")
        try:
            if method == "IGNORE":
                con.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM ({one_per_key}) AS s WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {on})")
                return True
            # columns only the table has (added by the user) keep their values; dropped ones become NULL
            carried = [c for c in self._table_columns(con, table) or [] if c.lower() not in lowered and c.lower() not in nulled]
            if carried:
                extra = ", ".join(quote_ident(c) for c in carried)
                key_cols = ", ".join(f"t.{quote_ident(k)}" for k in keys)
                con.execute(f"CREATE TEMP TABLE {kept} AS SELECT {key_cols}, {', '.join('t.' + quote_ident(c) for c in carried)} FROM {target} AS t SEMI JOIN {stage} AS s ON {on}")
            con.execute(f"DELETE FROM {target} AS t USING (SELECT DISTINCT {partition} FROM {stage}) AS s WHERE {on}")
            if carried:
                select = ", ".join(f"s.{quote_ident(n)}" for n in names) + ", " + ", ".join(f"k.{quote_ident(c)}" for c in carried)
                join = " AND ".join(f"k.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
                con.execute(f"INSERT INTO {target} ({cols}, {extra}) SELECT {select} FROM ({one_per_key}) AS s LEFT JOIN {kept} AS k ON {join}")
            else:
                con.execute(f"INSERT INTO {target} ({cols}) {one_per_key}")
            return True
        finally:
            for temp in (stage, kept):
                try:
                    con.execute(f"DROP TABLE IF EXISTS {temp}")
                except duckdb.Error:
                    pass  # an aborted transaction: the temp tables go with its rollback

    def _translate(self, exc: Exception, stream: str) -> DIError | None:
        if isinstance(exc, (duckdb.ConversionException, duckdb.ConstraintException, duckdb.BinderException)):
            return SchemaMismatch(
                f"the rows do not fit the DuckDB table: {first_line(exc)}",
                fix="check the column types and unique_constraints (rows with the same key need "
                "unique_constraints to be upserted).",
            )
        if isinstance(exc, (duckdb.IOException, duckdb.PermissionException)):
            return _connection_failed(resolve_path(self.config, must_exist=False, system="DuckDB"), exc)
        if isinstance(exc, duckdb.FatalException):
            return ConnectionFailed(
                f"DuckDB stopped with a fatal error and refuses this file until the process restarts: {first_line(exc)}",
                fix="restart the kernel (or rerun the CLI); if it ran out of memory, raise memory_limit in the destination's config.",
            )
        if isinstance(exc, duckdb.OutOfMemoryException):
            return ConfigError(
                f"DuckDB ran out of its memory_limit ({self.config.get('memory_limit')}) writing the table: {first_line(exc)}",
                fix="raise memory_limit in the destination's config (e.g. '1GB'), or leave it out: 'auto' grows with the columns.",
            )
        return None


SPEC = ConnectorSpec(
    name="duckdb",
    title="DuckDB",
    config_schema=CONFIG,
    source=DuckDBSource,
    destination=DuckDBDestination,
    description="A DuckDB database file: tables stream out as Arrow; writes are set-based and transactional.",
)
