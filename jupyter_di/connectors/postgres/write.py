"""The PostgreSQL destination: Arrow batches in over COPY binary, state in the same transaction.

Why ADBC for writes: ``adbc_ingest`` turns an Arrow batch into a binary COPY
in C (no Python per row), and it runs inside the connection's transaction, so
rows, the upsert and the state row commit together.

How each load works:
- Appends whose column types match the table exactly COPY straight into it.
- Upserts, and batches whose types differ from the table's columns, COPY into
  a temporary staging table (typed from the Arrow schema) and then run one
  ``INSERT ... SELECT CAST(...) ... ON CONFLICT (unique cols) DO UPDATE / DO
  NOTHING``; within a batch, the last row of a key wins for UPDATE, the first
  for IGNORE.
- FULL_TABLE is one transaction: ``TRUNCATE`` and every batch and the state
  commit together, so readers see the old rows (TRUNCATE blocks them until the
  commit) or the new ones, and a failure midway keeps the old rows.
  Otherwise every chunk commits with its state, then ``on_commit`` is called.

NUL characters (U+0000), which PostgreSQL text and jsonb cannot store, are
removed, with one warning per column naming the stream and the count.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from psycopg import sql

from ...errors import SchemaMismatch
from .._shared import column_types
from .._shared.changes import DELETED_AT_FIELD, apply_steps, check_keys, plan_changes, table_schema
from .._shared.commit_window import coalesced
from ..base import (
    FULL_TABLE,
    STATE_TABLE,
    BinaryCopy,
    Chunk,
    CommitCallback,
    Destination,
    StreamSettings,
    TableColumn,
    WriteRequest,
    WriteResult,
    internal_name,
    is_change_stream,
)
from .connection import PostgresConnector, render
from .types import (
    UNIQUE_INDEXES_SQL,
    WriteColumn,
    catalog_rows,
    same_type,
    shape_column,
    strip_nuls,
    table_columns,
    table_oid,
    write_column,
)

COPY_BYTES = 8 * 1024 * 1024
"""Batches are merged up to this size per COPY (and per commit of an incremental stream)."""

log = logging.getLogger(__name__)
MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1


UNTRANSLATABLE = "22P05"
"""SQLSTATE of text the database's encoding has no character for (a UTF8 value into a LATIN1 database)."""


class PostgresDestination(PostgresConnector, Destination):
    name = "postgresql"
    transactional = True
    applies_changes = True
    stores_infinity = True  # types.shape_column: infinity.for_write

    def write(self, request: WriteRequest, chunks: Iterable[Chunk], on_commit: CommitCallback | None = None) -> WriteResult:
        conn = self._cfg.adbc(autocommit=False)
        try:
            return _TableWriter(conn, self._cfg.schema, request, self._cfg.upsert_fillfactor).run(chunks, on_commit)
        finally:
            conn.close()

    def write_binary_copy(self, request: WriteRequest, copy: BinaryCopy, on_commit: CommitCallback | None = None) -> WriteResult | None:
        """The source server's COPY bytes as they are, where the table stores the same types (copy_write.py)."""
        from .copy_write import write_binary_copy

        return write_binary_copy(self._cfg, request, copy, on_commit)

    takes_column_types = True

    def column_type(self, field: pa.Field) -> str | None:
        return write_column(field).pg_type

    def describe_table(self, table: str) -> list[TableColumn] | None:
        with self._cfg.psycopg() as conn, conn.cursor() as cur:
            oid = table_oid(cur, self._cfg.schema, table)
            if oid is None:
                return None
            return [TableColumn(c.name, c.sql_type) for c in table_columns(cur, [oid])[oid]]

    def new_columns_refused(self, settings: StreamSettings, names: list[str]) -> Exception:
        return refused(self._cfg.schema, settings, names)

    def check_column_types(self, types: dict[str, str], *, stream: str) -> None:
        """Each override through the server's parser (``CAST(NULL AS type)`` in a transaction that is
        rolled back); the text already matched ``column_types.TYPE_TEXT``, the only way types reach SQL."""
        import psycopg

        with self._cfg.psycopg() as conn:
            for column, type_text in types.items():
                try:
                    with conn.transaction(force_rollback=True):
                        conn.execute(sql.SQL("SELECT CAST(NULL AS {})").format(sql.SQL(type_text)))
                except psycopg.Error as exc:
                    reason = str(exc).split("\n")[0]
                    raise column_types.unparsable(column, type_text, "PostgreSQL", reason, stream=stream) from None

    def _state_table(self) -> sql.Identifier:
        return sql.Identifier(self._cfg.schema, STATE_TABLE)

    def load_state(self, state_key: str) -> dict[str, Any] | None:
        import psycopg

        with self._cfg.psycopg() as conn:
            try:
                row = conn.execute(
                    sql.SQL("SELECT state::text FROM {} WHERE state_key = %s").format(self._state_table()), (state_key,)
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                return None
        return json.loads(row[0]) if row and row[0] is not None else None

    def clear_state(self, state_key: str) -> None:
        import psycopg

        with self._cfg.psycopg() as conn:
            try:
                conn.execute(sql.SQL("DELETE FROM {} WHERE state_key = %s").format(self._state_table()), (state_key,))
            except psycopg.errors.UndefinedTable:
                pass


def refused(schema: str, settings: StreamSettings, names: list[str]) -> SchemaMismatch:
    """Stream columns the table lacks while ``auto_add_new_fields`` is false."""
    return SchemaMismatch(
        f"table {schema}.{settings.table_name} has no column{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)}.",
        stream=settings.stream,
        fix="add the columns to the table, or set auto_add_new_fields: true to let jupyter-di add them.",
    )


class _TableWriter:
    """One write of one stream over one ADBC connection."""

    def __init__(self, conn: Any, schema: str, request: WriteRequest, fillfactor: int = 100) -> None:
        self.conn = conn  # an AdbcSession
        self.fillfactor = fillfactor
        self.schema = schema
        self.request = request
        self.settings = request.settings
        self.table = self.settings.table_name
        self.rel = sql.Identifier(schema, self.table)
        self.columns: dict[str, str] = {}  # name -> format_type, in table order
        self.stages: dict[str, str] = {}  # staging signature -> temp table name
        self.nul_counts: dict[str, int] = {}
        self.try_direct = True
        """Keyed batches of an upsert are first tried with a plain COPY (``_ingest_new_keys``) until one fails."""

    def _exec(self, query: sql.Composable, params: tuple | None = None) -> None:
        self.conn.execute(render(query), params)

    # -- the run --------------------------------------------------------------------------

    def run(self, chunks: Iterable[Chunk], on_commit: CommitCallback | None) -> WriteResult:
        import adbc_driver_manager

        s = self.settings
        full = s.replication_method == FULL_TABLE
        rows = 0
        state: dict[str, Any] | None = None
        try:
            if self.request.state_key:
                self._ensure_state_table()
            changes = is_change_stream(self.request.schema)
            if changes:
                check_keys(list(s.unique_constraints), self.request.schema, s.stream)
                self.try_direct = False  # its direct COPY commits first: a window's changes commit with its position only
            created = self._prepare_table(table_schema(self.request.schema) if changes else self.request.schema)
            if changes and s.delete_mode == "soft":  # our column: added whatever auto_add_new_fields says
                self._add_columns(pa.schema([DELETED_AT_FIELD]), force=True)
            if s.unique_constraints:
                self._ensure_unique_index()
            if full and not created:
                self._exec(sql.SQL("TRUNCATE {}").format(self.rel))
            for chunk in coalesced(chunks, COPY_BYTES):
                if chunk.batch.num_rows and changes:
                    steps = plan_changes(pa.Table.from_batches([chunk.batch]), list(s.unique_constraints), s.delete_mode)
                    apply_steps(self, None, s, None, steps)
                elif chunk.batch.num_rows:
                    self._load(chunk.batch)
                rows += chunk.batch.num_rows
                if chunk.state is not None:
                    state = chunk.state
                if not full:
                    self._commit(state)
                    if on_commit:
                        on_commit(rows, state)
            self._commit(state)
            if full and on_commit:
                on_commit(rows, state)
        except adbc_driver_manager.DatabaseError as exc:
            self._rollback()
            if exc is not self.conn.last_error:
                raise  # not one of this write's statements (the source's read, passing through `chunks`)
            raise self._mismatch(exc) from None
        except BaseException:
            self._rollback()
            raise
        self._warn_nuls()
        return WriteResult(rows_written=rows, state=state)

    def _commit(self, state: dict[str, Any] | None) -> None:
        if self.request.state_key and state is not None:
            self._exec(
                sql.SQL(
                    "INSERT INTO {} (state_key, state, updated_at) VALUES ($1, $2::jsonb, now()) "
                    "ON CONFLICT (state_key) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at"
                ).format(sql.Identifier(self.schema, STATE_TABLE)),
                (self.request.state_key, json.dumps(state, default=str, ensure_ascii=False)),
            )
        self.conn.commit()

    def _rollback(self) -> None:
        try:
            self.conn.rollback()
        except Exception:  # the connection may be gone; nothing was committed
            pass

    def _mismatch(self, exc: Exception) -> SchemaMismatch:
        reason = str(exc).split("\n")[0]
        for prefix in ("INTERNAL: ", "IO: ", "INVALID_ARGUMENT: ", "[libpq] "):
            reason = reason.replace(prefix, "")
        fix = "make the table's column types fit the data (or write into a new table)."
        if getattr(exc, "sqlstate", None) == UNTRANSLATABLE or "has no equivalent in encoding" in reason:
            fix = "the destination database's encoding cannot store these characters: write into a database created with ENCODING 'UTF8'."
        return SchemaMismatch(f"could not write into table {self.schema}.{self.table}: {reason}", stream=self.settings.stream, fix=fix)

    # -- tables ---------------------------------------------------------------------------

    def _ensure_state_table(self) -> None:
        import adbc_driver_manager
        import psycopg

        self._ensure_schema()
        try:
            self._exec(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (state_key TEXT PRIMARY KEY, state JSONB, updated_at TIMESTAMPTZ)").format(
                    sql.Identifier(self.schema, STATE_TABLE)
                )
            )
            self.conn.commit()
        except (adbc_driver_manager.IntegrityError, psycopg.IntegrityError):  # created by a parallel stream just now
            self.conn.rollback()

    def _ensure_schema(self) -> None:
        if not self.conn.fetchall("SELECT 1 FROM pg_namespace WHERE nspname = $1", (self.schema,)):
            self._exec(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))

    def _oid(self) -> int | None:
        return table_oid(self.conn, self.schema, self.table)

    def _prepare_table(self, schema: pa.Schema) -> bool:
        """Create the table or add the schema's new columns; True when it was created."""
        self._check_lengths([self.table, *schema.names])
        oid = self._oid()
        if oid is None:
            self._ensure_schema()
            types = {f.name: self._declared_type(f) for f in schema}
            defs = [sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(types[f.name])) for f in schema]
            if self.settings.unique_constraints:
                self._check_names(self.settings.unique_constraints, [f.name for f in schema], "unique constraint")
                defs.append(sql.SQL("UNIQUE ({})").format(sql.SQL(", ").join(map(sql.Identifier, self.settings.unique_constraints))))
            storage: sql.Composable = sql.SQL("")
            if self.settings.unique_constraints and self.fillfactor < 100:
                storage = sql.SQL(" WITH (fillfactor = {})").format(sql.Literal(self.fillfactor))
            self._exec(sql.SQL("CREATE TABLE {} ({}){}").format(self.rel, sql.SQL(", ").join(defs), storage))
            self.columns = types
            return True
        self.columns = {c.name: c.sql_type for c in table_columns(self.conn, [oid])[oid]}
        self._add_columns(schema)
        return False

    def _add_columns(self, schema: pa.Schema, force: bool = False) -> None:
        new = [f for f in schema if f.name not in self.columns]
        if not new:
            return
        if not self.settings.auto_add_new_fields and not force:
            raise refused(self.schema, self.settings, [f.name for f in new])
        for f in new:
            pg_type = write_column(f).pg_type if force else self._declared_type(f)
            self._exec(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(self.rel, sql.Identifier(f.name), sql.SQL(pg_type)))
            self.columns[f.name] = pg_type

    def _declared_type(self, f: pa.Field) -> str:
        """The type a new column gets: the stream's override (then every batch is cast to it), else the mapped one."""
        return column_types.override(self.settings.column_types, f.name) or write_column(f).pg_type

    def _check_lengths(self, names: list[str]) -> None:
        """PostgreSQL silently cuts identifiers at 63 bytes; refuse instead of writing elsewhere."""
        long = [n for n in names if len(n.encode()) > MAX_IDENTIFIER_BYTES]
        if long:
            raise SchemaMismatch(
                f"name{'s' if len(long) > 1 else ''} {', '.join(repr(n) for n in long)} exceed PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte identifier limit.",
                stream=self.settings.stream,
                fix="rename the column in an upstream block or set a shorter destination_table.",
            )

    def _check_names(self, names: list[str], have: Iterable[str], what: str) -> None:
        missing = [n for n in names if n not in set(have)]
        if missing:
            raise SchemaMismatch(
                f"{what} column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} not in the data.",
                stream=self.settings.stream,
                fix=f"pick {what} columns among the stream's columns.",
            )

    def _ensure_unique_index(self) -> None:
        import adbc_driver_manager

        unique = list(self.settings.unique_constraints)
        self._check_names(unique, self.columns, "unique constraint")
        oid = self._oid()
        existing = [sorted(r[0]) for r in catalog_rows(self.conn, UNIQUE_INDEXES_SQL, (oid,))]
        if sorted(unique) in existing:
            return
        try:
            self._exec(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(self.rel, sql.SQL(", ").join(map(sql.Identifier, unique))))
        except adbc_driver_manager.IntegrityError:
            raise SchemaMismatch(
                f"cannot upsert on ({', '.join(unique)}): table {self.schema}.{self.table} already has rows sharing those values.",
                stream=self.settings.stream,
                fix="remove the duplicate rows or pick unique_constraints that are unique in the table.",
            ) from None

    # -- loading --------------------------------------------------------------------------

    def _shaped(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[WriteColumn]]:
        """The batch as ADBC's COPY writer takes it (new columns added to the table first)."""
        if any(name not in self.columns for name in batch.schema.names):
            self._check_lengths(batch.schema.names)
        self._add_columns(batch.schema)
        wcs = [write_column(f) for f in batch.schema]
        arrays = []
        for col, wc in zip(batch.columns, wcs):
            col, nuls = strip_nuls(shape_column(col, wc), wc.is_json)
            if nuls:
                self.nul_counts[wc.name] = self.nul_counts.get(wc.name, 0) + nuls
            arrays.append(col)
        return pa.RecordBatch.from_arrays(arrays, names=[wc.name for wc in wcs]), wcs

    def _load(self, batch: pa.RecordBatch) -> None:
        data, wcs = self._shaped(batch)
        same = all(same_type(self.columns[wc.name], wc) for wc in wcs)
        if same and not self.settings.unique_constraints:
            self.conn.ingest(self.table, data, schema=self.schema)
            return
        if same and self.try_direct and self.settings.replication_method != FULL_TABLE and self._ingest_new_keys(data):
            return
        stage = self._stage(wcs)
        self._exec(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
        self.conn.ingest(stage, data, temporary=True)
        self._exec(self._insert_select(stage, wcs))

    def _ingest_new_keys(self, data: pa.RecordBatch) -> bool:
        """COPY a keyed batch straight into the table: right when none of its keys is in the table or
        twice in the batch (a first load), and it saves the staging table and the INSERT ... ON
        CONFLICT (measured: benchmarks/singer_target.py).  Otherwise the unique index refuses the
        COPY; the transaction, which holds only this batch (an upsert commits each batch; what came
        before it, the table's DDL, is committed first), is rolled back and this write upserts from
        then on (False)."""
        import adbc_driver_manager

        self.conn.commit()
        try:
            self.conn.ingest(self.table, data, schema=self.schema)
        except adbc_driver_manager.IntegrityError:
            self.conn.rollback()
            self.try_direct = False
            return False
        return True

    def _stage(self, wcs: list[WriteColumn]) -> str:
        """A temporary table typed like the batch (one per distinct batch schema)."""
        signature = json.dumps([[wc.name, wc.pg_type] for wc in wcs])
        if signature not in self.stages:
            name = internal_name("stage", signature)
            defs = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(wc.name), sql.SQL(wc.pg_type)) for wc in wcs)
            self._exec(sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(name), defs))
            self.stages[signature] = name
        return self.stages[signature]

    def _insert_select(self, stage: str, wcs: list[WriteColumn]) -> sql.Composed:
        s = self.settings
        names = [wc.name for wc in wcs]
        exprs = []
        for wc in wcs:
            src = sql.SQL("s.{}").format(sql.Identifier(wc.name))
            target_type = self.columns[wc.name]
            if target_type != wc.pg_type:
                src = sql.SQL("CAST({} AS {})").format(src, sql.SQL(target_type))
            exprs.append(sql.SQL("{} AS {}").format(src, sql.Identifier(wc.name)))
        cols = sql.SQL(", ").join(map(sql.Identifier, names))
        unique = list(s.unique_constraints)
        updates = [n for n in names if n not in unique]
        select = sql.SQL(", ").join(exprs)
        stage_rel = sql.Identifier(stage)
        if not unique:
            return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} AS s").format(self.rel, cols, select, stage_rel)
        conflict = sql.SQL(", ").join(map(sql.Identifier, unique))
        if s.unique_conflict_method == "IGNORE" or not updates:
            return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} AS s ORDER BY s.ctid ON CONFLICT ({}) DO NOTHING").format(
                self.rel, cols, select, stage_rel, conflict
            )
        keys = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(u)) for u in unique)
        assigns = [sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n)) for n in updates]
        # columns the table has but the stream no longer sends (dropped at the source) become NULL
        dropped = [n for n in getattr(self.request, "dropped_columns", []) if n in self.columns and n not in names and n not in unique]
        assigns += [sql.SQL("{} = NULL").format(sql.Identifier(n)) for n in dropped]
        assign = sql.SQL(", ").join(assigns)
        return sql.SQL(
            "INSERT INTO {} ({}) SELECT DISTINCT ON ({}) {} FROM {} AS s ORDER BY {}, s.ctid DESC ON CONFLICT ({}) DO UPDATE SET {}"
        ).format(self.rel, cols, keys, select, stage_rel, keys, conflict, assign)

    # -- change streams (LOG_BASED): changes.py reduces a window, these run its steps ---------

    def _staged(self, rows: pa.Table) -> tuple[str, list[WriteColumn]]:
        data, wcs = self._shaped(pa.RecordBatch.from_arrays([c.combine_chunks() for c in rows.columns], names=rows.column_names))
        stage = self._stage(wcs)
        self._exec(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))
        self.conn.ingest(stage, data, temporary=True)
        return stage, wcs

    def _source(self, wc: WriteColumn) -> sql.Composable:
        src: sql.Composable = sql.SQL("s.{}").format(sql.Identifier(wc.name))
        if self.columns[wc.name] != wc.pg_type:
            src = sql.SQL("CAST({} AS {})").format(src, sql.SQL(self.columns[wc.name]))
        return src

    def _on(self, keys: list[str]) -> sql.Composable:
        return sql.SQL(" AND ").join(sql.SQL("t.{} = s.{}").format(sql.Identifier(k), sql.Identifier(k)) for k in keys)

    def _update_keys(self, con: Any, table: str, rows: pa.Table, keys: list[str]) -> int:
        stage, wcs = self._staged(rows)
        sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(wc.name), self._source(wc)) for wc in wcs if wc.name not in keys)
        query = sql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE {}").format(self.rel, sets, sql.Identifier(stage), self._on(keys))
        return int(self.conn.execute(render(query)))

    def _delete_keys(self, con: Any, table: str, rows: pa.Table, keys: list[str]) -> None:
        stage, _ = self._staged(rows)
        self._exec(sql.SQL("DELETE FROM {} AS t USING {} AS s WHERE {}").format(self.rel, sql.Identifier(stage), self._on(keys)))

    def _truncate(self, con: Any, table: str, column: str | None, value: pa.Array | None) -> None:
        if column is None or value is None:
            self._exec(sql.SQL("DELETE FROM {}").format(self.rel))
            return
        micros = value.cast(pa.int64()).to_pylist()[0]
        self._exec(
            sql.SQL("UPDATE {} SET {} = TIMESTAMPTZ 'epoch' + $1::int8 * INTERVAL '1 microsecond' WHERE {} IS NULL").format(
                self.rel, sql.Identifier(column), sql.Identifier(column)
            ),
            (micros,),
        )

    def _upsert_rows(self, con: Any, s: StreamSettings, known: Any, table: str, rows: pa.Table) -> None:
        for batch in rows.to_batches():
            if batch.num_rows:
                self._load(batch)

    def _warn_nuls(self) -> None:
        for column, count in self.nul_counts.items():
            message = (
                f"stream '{self.settings.stream}', column '{column}': removed NUL characters (U+0000) from {count} "
                "value(s), because PostgreSQL text cannot store them."
            )
            log.warning(message)
            warnings.warn(message, stacklevel=3)
