"""The DuckDB destination: commit windows of Arrow batches into tables, rows and state in one transaction."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from ...errors import ConfigError, ConnectionFailed, DIError, SchemaMismatch
from .._shared.commit_window import CommitWindow
from .._shared.db_file import first_line
from .._shared.sql_file_destination import SqlFileDestination
from .._shared.sql_names import qualify, quote_ident
from .._shared.sql_upsert import conflict_clause, dedupe_on_keys
from ..base import (
    FULL_TABLE,
    INTERNAL_PREFIX,
    BinaryCopy,
    Chunk,
    CommitCallback,
    ConfigField,
    StreamSettings,
    TableColumn,
    WriteRequest,
    WriteResult,
    is_change_stream,
)
from . import postgres_scan
from .connection import CONFIG, DuckDBConnector, connection_failed, open_duckdb
from .types import duckdb_type

WRITE_MEMORY_LIMIT = "100MB"
"""DuckDB caches every block it writes up to its memory limit (80% of RAM by default), so a
multi-million-row load would otherwise grow the process by the size of the data."""
MEMORY_PER_COLUMN_MB = 2
"""DuckDB builds every column of a row group in its own blocks, per thread: measured, 101 text
columns need 150 MB to insert and 200 MB to upsert (100 MB fails with "Out of Memory"), so the
automatic limit is the larger of 100 MB and 2 MB per column."""
_MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)

ANY_ORDER_MEMORY_LIMIT_MB = 64
"""The automatic limit's floor for a FULL_TABLE load without keys (``_any_order``): 5M rows through a
notebook with ``partitions: auto`` peaked at 301-312 MB at 100MB and 262-265 MB at 64MB, as fast;
20, 32 and 50 text columns load at 64MB (50 fail at 32MB), and 2 MB per column still applies above 32."""
VERSION_INFO_BYTES_PER_ROW = 8
"""A delete keeps 16 KB of version information (a transaction id per row) for every 2,048-row vector
that has a deleted row, pinned in DuckDB's buffer pool until the next checkpoint; a window of random
keys touches every vector (measured, 5M rows: 46 MB for 10k or 100k deleted keys). So a change
window into a table of 20M rows failed at 100MB ("failed to pin block")."""
CHANGE_HEADROOM_MB = 64
"""Beyond the version information a change window needs the key column's blocks, its join and the
appended rows not yet checkpointed: measured, 5M rows failed at 64MB (61 MiB of it used) and passed
at 100MB; 10M rows (87 MB used) passed at 100MB."""

MIN_MEMORY_LIMIT_MB = 16
"""Below this DuckDB cannot write even a narrow table (a 1KB limit failed mid-write)."""

_SIZE_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class DuckDBDestination(DuckDBConnector, SqlFileDestination):
    """Writes Arrow batches into DuckDB tables, rows and state in one transaction."""

    name = "duckdb"
    config_schema = [
        *CONFIG,
        ConfigField(
            "postgres_scanner",
            "boolean",
            default=True,
            description="Read a FULL_TABLE stream from a PostgreSQL source block with DuckDB's own postgres extension when "
            "it is installed (the postgres-scanner extra) and reads every column as jupyter-di would; false: always "
            "through Arrow.",
        ),
    ]
    stores_infinity = True  # DuckDB's Arrow import takes the convention of _shared/infinity.py as infinity

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
    change_window_rows = 50_000
    """A change window's Arrow rows, its planned upserts and DuckDB's join and appended rows grow with
    the window; what a window of deletes costs does not (DuckDB keeps 16 KB of version information
    per 2,048-row vector that has a deleted row, about 46 MB for 5M rows whether 10k or 100k random
    keys go). Measured, 1M changes on 5M rows: 50k-change windows take the peak 10-25 MB lower than
    100k, at about the same speed; 25k another 15 MB lower (DuckDB alone) but more statements."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._view = f"{INTERNAL_PREFIX}batch_{uuid.uuid4().hex}"

    def write(self, request: WriteRequest, chunks: Iterable[Chunk], on_commit: CommitCallback | None = None) -> WriteResult:
        s = request.settings
        # A FULL_TABLE load without keys has no row order to keep (its read has no ORDER BY, and
        # partitioned reads interleave parts): DuckDB then inserts with all its threads, each filling
        # row groups of its own.  With keys, ``_one_row_per_key`` relies on rowids in load order.
        self._any_order = s.replication_method == FULL_TABLE and not s.unique_constraints and not is_change_stream(request.schema)
        return super().write(request, chunks, on_commit)

    splits_reads_itself = True  # the scanner reads block ranges on parallel connections

    @classmethod
    def takes_binary_copy(cls) -> bool:
        return postgres_scan.extension_file() is not None

    def write_binary_copy(self, request: WriteRequest, copy: BinaryCopy, on_commit: CommitCallback | None = None) -> WriteResult | None:
        """A PostgreSQL table read by DuckDB's scanner into the staging table (``postgres_scan.py``),
        then swapped in with its state like any FULL_TABLE load; None where the scanner cannot read it
        as ``Source.read`` would (then the stream goes through Arrow)."""
        s = request.settings
        if (
            s.replication_method != FULL_TABLE
            or s.unique_constraints
            or is_change_stream(request.schema)
            or copy.table is None
            or self.config.get("postgres_scanner") is False
            or [c.name for c in copy.columns] != request.schema.names
            or postgres_scan.extension_file() is None
        ):
            return None

        def scan(con: duckdb.DuckDBPyConnection, staging: str) -> int:
            if not postgres_scan.load(con):
                raise postgres_scan.Declined
            return postgres_scan.insert_scanned(con, staging, copy)

        self._any_order = True  # no keys, no row order to keep: DuckDB inserts on all its threads
        try:
            result = self._write(request, (), on_commit, scan=scan)
        except postgres_scan.Declined:
            return None
        finally:
            copy.close()
        copy.rows = result.rows_written
        return result

    def _connect(self) -> duckdb.DuckDBPyConnection:
        return open_duckdb(self.path(must_exist=False), reading=False)

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
        self._auto_limit_mb = 0
        if limit is None or str(limit).strip().lower() == "auto":
            floor = ANY_ORDER_MEMORY_LIMIT_MB if getattr(self, "_any_order", False) else int(WRITE_MEMORY_LIMIT[:-2])
            self._auto_limit_mb = max(floor, MEMORY_PER_COLUMN_MB * len(schema))
            limit = f"{self._auto_limit_mb}MB"
        self._previous_limit = None
        if limit:
            if not _MEMORY_LIMIT.match(str(limit)):
                raise ConfigError(f"memory_limit {limit!r} is not a size.", fix="write it like '256MB' or '2GB'.")
            row = con.execute("SELECT current_setting('memory_limit')").fetchone()
            assert row is not None  # a SELECT without FROM returns one row
            self._previous_limit = row[0]
            con.execute("SET memory_limit = ?", [str(limit).strip()])
        if getattr(self, "_any_order", False):
            con.execute("SET SESSION preserve_insertion_order = false")  # this connection only
        if self.schema != "main":
            _until_created(lambda: con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}"))

    def _after_staging_commit(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            con.execute("CHECKPOINT")
        except duckdb.TransactionException:
            # another connection to this file is mid-transaction (a source block reading the same
            # file while this destination writes it): DuckDB checkpoints later by itself
            pass

    def _ensure_state_table(self, con: duckdb.DuckDBPyConnection) -> None:
        create = super()._ensure_state_table
        _until_created(lambda: create(con))

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

    def _described(self, con: duckdb.DuckDBPyConnection, table: str) -> list[TableColumn]:
        rows = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND lower(table_name) = lower(?) ORDER BY column_index",
            [self.schema, table],
        ).fetchall()
        return [TableColumn(name, data_type) for name, data_type in rows]

    def _type_probe(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(":memory:")

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
                + conflict_clause(keys, batch.schema.names, method, self._null_on_update)
            )

    def _insert_stream(self, con: duckdb.DuckDBPyConnection, table: str, window: CommitWindow) -> None:
        assert window.schema is not None  # only windows that are not empty are written
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
        assert window.schema is not None  # only windows that are not empty are written
        names = list(window.schema.names)
        lowered = {n.lower() for n in names}
        nulled = {c.lower() for c in self._null_on_update}
        target = self._table_sql(table)
        stage, kept = quote_ident(f"{self._view}_stage"), quote_ident(f"{self._view}_kept")
        cols = ", ".join(quote_ident(n) for n in names)
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        partition = ", ".join(quote_ident(k) for k in keys)
        pick = "min" if method == "IGNORE" else "max"  # IGNORE keeps a key's first row, UPDATE its last
        one_per_key = f"SELECT {cols} FROM {stage}"
        with self._registered(con, window.reader()) as view:
            con.execute(f"CREATE TEMP TABLE {stage} AS SELECT {cols} FROM {view}")
        try:
            # One row per key by deleting the staged duplicates first: an INSERT that picks them with a
            # window function (or a rowid semi-join) ran out of the 100MB memory_limit at ~850k rows.
            dup = " AND ".join(f"{stage}.{quote_ident(k)} IS NOT DISTINCT FROM d.{quote_ident(k)}" for k in keys)
            con.execute(
                f"DELETE FROM {stage} USING (SELECT {partition}, {pick}(rowid) AS keep FROM {stage} GROUP BY {partition} "
                f"HAVING count(*) > 1) AS d WHERE {dup} AND {stage}.rowid <> d.keep"
            )
            if method == "IGNORE":
                con.execute(
                    f"INSERT INTO {target} ({cols}) SELECT {cols} FROM ({one_per_key}) AS s WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {on})"
                )
                return True
            # columns only the table has (added by the user) keep their values; dropped ones become NULL
            carried = [c for c in self._table_columns(con, table) or [] if c.lower() not in lowered and c.lower() not in nulled]
            if carried:
                extra = ", ".join(quote_ident(c) for c in carried)
                key_cols = ", ".join(f"t.{quote_ident(k)}" for k in keys)
                con.execute(
                    f"CREATE TEMP TABLE {kept} AS SELECT {key_cols}, {', '.join('t.' + quote_ident(c) for c in carried)} FROM {target} AS t SEMI JOIN {stage} AS s ON {on}"
                )
            con.execute(f"DELETE FROM {target} AS t USING (SELECT DISTINCT {partition} FROM {stage}) AS s WHERE {on}")
            if carried:
                select = ", ".join(f"s.{quote_ident(n)}" for n in names) + ", " + ", ".join(f"k.{quote_ident(c)}" for c in carried)
                join = " AND ".join(f"k.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
                con.execute(
                    f"INSERT INTO {target} ({cols}, {extra}) SELECT {select} FROM ({one_per_key}) AS s LEFT JOIN {kept} AS k ON {join}"
                )
            else:
                con.execute(f"INSERT INTO {target} ({cols}) {one_per_key}")
            return True
        finally:
            for temp in (stage, kept):
                try:
                    con.execute(f"DROP TABLE IF EXISTS {temp}")
                except duckdb.Error:
                    pass  # an aborted transaction: the temp tables go with its rollback

    # -- change streams (LOG_BASED)

    def _apply_changes(self, con: duckdb.DuckDBPyConnection, s: StreamSettings, known: dict[str, str], window: CommitWindow) -> None:
        self._fit_version_info(con, s.table_name)
        super()._apply_changes(con, s, known, window)

    def _fit_version_info(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        """Raise an automatic memory_limit to what a window's deletes pin for this table's rows
        (``VERSION_INFO_BYTES_PER_ROW``); a limit the user set is theirs (its error says to raise it)."""
        if not self._auto_limit_mb:
            return
        need = -(-self._table_rows(con, table) * VERSION_INFO_BYTES_PER_ROW // 10**6) + CHANGE_HEADROOM_MB
        if need > self._auto_limit_mb:
            self._auto_limit_mb = need
            con.execute("SET memory_limit = ?", [f"{need}MB"])

    def _table_rows(self, con: duckdb.DuckDBPyConnection, table: str) -> int:
        """The table's row count as DuckDB estimates it (0 for an empty or missing table)."""
        rows = con.execute(
            "SELECT estimated_size FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
            "AND lower(table_name) = lower(?)",
            [self.schema, table],
        ).fetchall()  # every row: DuckDB refuses the next statement while a result is unfinished
        return int(rows[0][0] if rows and rows[0][0] else 0)

    def _upsert_window_rows(self, con: duckdb.DuckDBPyConnection, table: str) -> float:
        """Upserts into a table that has rows go in windows of ``change_window_rows``: each window's
        DELETE pins version information for every vector it touches and its inserted rows stay in
        memory until a checkpoint, so a 1M-row window of 854k changed rows into 5M rows peaked at
        388-390 MB, 50k-row windows at 261-262 MB and no slower (issue 18). A first sync into an
        empty table deletes nothing and keeps the large windows (5.2M rows: 8-11 s against 13 s)."""
        return self.change_window_rows if self._table_rows(con, table) else math.inf

    def _upsert_rows(self, con: duckdb.DuckDBPyConnection, s: StreamSettings, known: Any, table: str, rows: pa.Table) -> None:
        """A change window's upserts hold one row per key (``changes.plan_changes``): delete their keys
        and insert them straight from the Arrow table, without the staging copy and the one-row-per-key
        window function a stream's upsert needs (less memory and time per window)."""
        keys = list(s.unique_constraints)
        if table not in self._unique_tables:
            self._unique_tables[table] = self._has_unique(con, table, keys)
        self._add_columns(con, s, known, rows.schema)
        lowered = {n.lower() for n in rows.column_names}
        nulled = {c.lower() for c in self._null_on_update}
        carried = [c for c in self._table_columns(con, table) or [] if c.lower() not in lowered and c.lower() not in nulled]
        if self._unique_tables[table] or carried:
            super()._upsert_rows(con, s, known, table, rows)  # ON CONFLICT, or columns only the table has
            return
        target = self._table_sql(table)
        cols = ", ".join(quote_ident(n) for n in rows.column_names)
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        with self._registered(con, rows) as view:
            con.execute(f"DELETE FROM {target} AS t USING {view} AS s WHERE {on}")
            con.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {view}")

    def _update_keys(self, con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, keys: list[str]) -> int:
        sets = ", ".join(f"{quote_ident(c)} = s.{quote_ident(c)}" for c in rows.column_names if c not in keys)
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        with self._registered(con, rows) as view:
            row = con.execute(f"UPDATE {self._table_sql(table)} AS t SET {sets} FROM {view} AS s WHERE {on}").fetchone()
        return int(row[0]) if row else -1

    def _delete_keys(self, con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, keys: list[str]) -> None:
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        with self._registered(con, rows) as view:
            con.execute(f"DELETE FROM {self._table_sql(table)} AS t USING {view} AS s WHERE {on}")

    def _truncate(self, con: duckdb.DuckDBPyConnection, table: str, column: str | None, value: pa.Array | None) -> None:
        if column is None or value is None:
            super()._truncate(con, table, None, None)
            return
        col = quote_ident(column)
        with self._registered(con, pa.table({"v": value})) as view:
            con.execute(f"UPDATE {self._table_sql(table)} SET {col} = (SELECT v FROM {view}) WHERE {col} IS NULL")

    def _translate(self, exc: Exception, stream: str) -> DIError | None:
        if isinstance(exc, (duckdb.ConversionException, duckdb.ConstraintException, duckdb.BinderException)):
            return SchemaMismatch(
                f"the rows do not fit the DuckDB table: {first_line(exc)}",
                fix="check the column types and unique_constraints (rows with the same key need unique_constraints to be upserted).",
            )
        if isinstance(exc, (duckdb.IOException, duckdb.PermissionException)):
            return connection_failed(self.path(must_exist=False), exc)
        if isinstance(exc, duckdb.FatalException):
            return ConnectionFailed(
                f"DuckDB stopped with a fatal error and refuses this file until the process restarts: {first_line(exc)}",
                fix="restart the kernel (or rerun the CLI); if it ran out of memory, raise memory_limit in the destination's config.",
            )
        if isinstance(exc, duckdb.OutOfMemoryException):
            return ConfigError(
                f"DuckDB ran out of its memory_limit ({self.config.get('memory_limit')}) writing the table: {first_line(exc)}",
                fix="raise memory_limit in the destination's config (e.g. '1GB'), or leave it out: 'auto' grows with the columns (and, for LOG_BASED, the table's rows).",
            )
        return None


def _until_created(create: Callable[[], object]) -> None:
    """Run a ``CREATE ... IF NOT EXISTS``, waiting while another connection's CREATE of the same object is
    not committed yet.  Two destination blocks writing into one file both create the state table (and
    their schema) on their first run, at once: DuckDB refuses the second ("Catalog write-write conflict
    on create"; one in three such first runs failed)."""
    deadline = time.monotonic() + 5  # seconds; the other CREATE is one statement
    while True:
        try:
            create()
            return
        except duckdb.TransactionException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
