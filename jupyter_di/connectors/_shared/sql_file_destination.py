"""The write loop of the embedded SQL databases (DuckDB and SQLite): one transactional destination.

Why one module: both engines are transactional files that speak the same SQL for a write
(``INSERT ... ON CONFLICT (keys) DO UPDATE SET c = excluded.c / DO NOTHING``), where the rows and
the ``_jupyter_di_state`` row commit together.  So the whole write loop (create/evolve the table,
replace/append/upsert, state in the same transaction, ``on_commit`` after each commit) lives here
once; each connector package only supplies how to open its file, read its catalog and push rows
(with the ``ON CONFLICT`` clause of ``sql_upsert.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from abc import abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import pyarrow as pa

from ...errors import ConfigError, DIError, SchemaMismatch
from ..base import (
    FULL_TABLE,
    STATE_TABLE,
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
from . import column_types
from .changes import DELETED_AT_FIELD, apply_steps, check_keys, plan_changes, table_schema
from .commit_window import ChunkSource, CommitWindow
from .db_file import first_line
from .sql_names import quote_ident

CHANGE_WINDOW_ROWS = 100_000
CHANGE_WINDOW_BYTES = 32 * 1024 * 1024
"""A change stream's commit window: reduced in memory to its steps (``changes.plan_changes``)."""


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
    state_json_type: ClassVar[str] = "TEXT"
    begin_sql: ClassVar[str] = "BEGIN"
    _null_on_update: list[str] = []  # noqa: RUF012 - replaced per write, never mutated
    """Table columns the stream dropped: an upsert sets them NULL (set per ``write`` before any SQL)."""

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
    def _described(self, con: Any, table: str) -> list[TableColumn]:
        """The table's columns with their declared types, in table order ([] when there is no table)."""

    @abstractmethod
    def _type_probe(self) -> Any:
        """A throwaway in-memory connection of the same engine, to ask whether it parses a type."""

    @abstractmethod
    def _insert(self, con: Any, table: str, batch: pa.RecordBatch, keys: list[str], method: str) -> None:
        """Insert (or upsert on ``keys``) one batch inside the open transaction."""

    def _insert_stream(self, con: Any, table: str, window: CommitWindow) -> None:
        """Insert a whole window with one statement (engines with ``bulk_insert``)."""
        raise NotImplementedError

    def _upsert_stream(self, con: Any, table: str, window: CommitWindow, keys: list[str], method: str) -> bool:
        """Upsert a whole window with set-based statements; False when the engine cannot here."""
        return False

    def _upsert_window_rows(self, con: Any, table: str) -> float:
        """At most this many rows per upsert window (an INCREMENTAL or APPEND stream with keys)."""
        return math.inf

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

    takes_column_types: ClassVar[bool] = True

    def column_type(self, field: pa.Field) -> str | None:
        return self._column_type(field)

    def describe_table(self, table: str) -> list[TableColumn] | None:
        con = self._connect()
        try:
            return self._described(con, table) or None
        finally:
            con.close()

    def check_column_types(self, types: dict[str, str], *, stream: str) -> None:
        """Each override through the engine's parser (``CAST(NULL AS type)``, on an in-memory database:
        nothing touches the destination); the text already matched ``column_types.TYPE_TEXT``."""
        con = self._type_probe()
        try:
            for column, type_text in types.items():
                try:
                    con.execute(f"SELECT CAST(NULL AS {type_text})").fetchall()
                except Exception as exc:
                    raise column_types.unparsable(column, type_text, self.name, first_line(exc), stream=stream) from None
        finally:
            con.close()

    def new_columns_refused(self, settings: StreamSettings, names: list[str]) -> Exception:
        return SchemaMismatch(
            f"the stream has column(s) {', '.join(repr(n) for n in names)} that table {settings.table_name!r} does not have.",
            stream=settings.stream,
            fix="set auto_add_new_fields: true, or deselect these columns.",
        )

    def _declared_type(self, s: StreamSettings, f: pa.Field) -> str:
        """The type a new column gets: the stream's override, else the mapped one."""
        return column_types.override(s.column_types, f.name) or self._column_type(f)

    def write(self, request: WriteRequest, chunks: Iterable[Chunk], on_commit: CommitCallback | None = None) -> WriteResult:
        return self._write(request, chunks, on_commit)

    def _write(
        self,
        request: WriteRequest,
        chunks: Iterable[Chunk],
        on_commit: CommitCallback | None = None,
        scan: Callable[[Any, str], int] | None = None,
    ) -> WriteResult:
        """``write``; with ``scan`` (a staged FULL_TABLE write whose engine reads the source itself:
        DuckDB's postgres scanner) the rows come from ``scan(connection, staging table)``, which
        inserts them into the staging table in the open transaction and says how many."""
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
                changes = is_change_stream(request.schema)
                if changes:
                    check_keys(list(s.unique_constraints), request.schema, s.stream)
                known = self._prepare_table(con, s, table_schema(request.schema) if changes else request.schema)
                if changes and s.delete_mode == "soft":  # our column: added whatever auto_add_new_fields says
                    self._add_columns(con, dataclasses.replace(s, auto_add_new_fields=True), known, pa.schema([DELETED_AT_FIELD]))
                self._null_on_update = [
                    known[c.lower()] for c in request.dropped_columns if c.lower() in known and c not in request.schema.names
                ]
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
                if scan is not None:
                    assert staged, "only a staged FULL_TABLE write reads its rows itself"
                    rows = scan(con, self._table_sql(insert_into))
                    source = ChunkSource(iter(()))
                limit = self.commit_every_rows if (staged or not full) else math.inf
                seconds = self.commit_every_seconds if (staged or not full) else math.inf
                nbytes = self.commit_every_bytes if (s.unique_constraints and not full) else math.inf
                if changes:  # a window of changes is planned in memory (changes.py): keep it small
                    limit, nbytes = min(limit, self.change_window_rows), min(nbytes, CHANGE_WINDOW_BYTES)
                elif s.unique_constraints and not full:
                    limit = min(limit, self._upsert_window_rows(con, s.table_name))
                while not source.exhausted:
                    window = CommitWindow(source, limit, seconds, nbytes)
                    if not window.empty and changes:
                        self._apply_changes(con, s, known, window)
                    elif not window.empty:
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
                    if s.unique_constraints and rows:
                        self._one_row_per_key(con, insert_into, s)
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
                raise exc.with_context(stream=s.stream) from exc.__cause__  # the same error, its cause kept
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

    # ---- change streams (LOG_BASED): changes.py reduces a window, the engine runs its steps

    applies_changes: ClassVar[bool] = True
    change_window_rows: ClassVar[int] = CHANGE_WINDOW_ROWS

    def _apply_changes(self, con: Any, s: StreamSettings, known: dict[str, str], window: CommitWindow) -> None:
        table = pa.Table.from_batches(list(window.batches()), schema=window.schema)
        steps = plan_changes(table, _batch_keys(table.schema, s), s.delete_mode)
        apply_steps(self, con, s, known, steps)

    def _truncate(self, con: Any, table: str, column: str | None, value: pa.Array | None) -> None:
        """Empty the table, or (``column``) set ``column`` to ``value`` where it is NULL."""
        if column is None:
            con.execute(f"DELETE FROM {self._table_sql(table)}")
        else:
            con.execute(
                f"UPDATE {self._table_sql(table)} SET {quote_ident(column)} = ? WHERE {quote_ident(column)} IS NULL", [self._param(value)]
            )

    def _param(self, value: Any) -> Any:
        """A one-element Arrow array as a statement parameter."""
        raise NotImplementedError

    @abstractmethod
    def _update_keys(self, con: Any, table: str, rows: pa.Table, keys: list[str]) -> int:
        """Set ``rows``' other columns in the table's rows with their keys; how many rows matched."""

    @abstractmethod
    def _delete_keys(self, con: Any, table: str, rows: pa.Table, keys: list[str]) -> None:
        """Delete the table's rows with these keys."""

    def _upsert_rows(self, con: Any, s: StreamSettings, known: dict[str, str], table: str, rows: pa.Table) -> None:
        source = ChunkSource(iter([Chunk(batch=b) for b in rows.to_batches()]))
        self._write_window(con, s, known, table, CommitWindow(source), staged=False)

    def load_state(self, state_key: str) -> dict[str, Any] | None:
        con = self._connect()
        try:
            if self._table_columns(con, STATE_TABLE) is None:
                return None
            row = con.execute(f"SELECT state FROM {self._table_sql(STATE_TABLE)} WHERE state_key = ?", [state_key]).fetchall()
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

    def _one_row_per_key(self, con: Any, staging: str, s: StreamSettings) -> None:
        """A staged FULL_TABLE load keeps one row per key: the last loaded (UPDATE) or the first (IGNORE),
        as the same rows upserted one after another would (rowids grow in load order)."""
        names = {n.lower(): n for n in self._table_columns(con, staging) or []}
        keys = ", ".join(quote_ident(names.get(k.lower(), k)) for k in s.unique_constraints)
        pick = "min" if s.unique_conflict_method == "IGNORE" else "max"
        table = self._table_sql(staging)
        con.execute(f"DELETE FROM {table} WHERE rowid NOT IN (SELECT {pick}(rowid) FROM {table} GROUP BY {keys})")

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
                raise SchemaMismatch(f"cannot create table {table!r} without columns.", stream=s.stream, fix="send at least one column.")
            cols = ", ".join(f"{quote_ident(f.name)} {self._declared_type(s, f)}" for f in schema)
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
        if not s.auto_add_new_fields:
            raise self.new_columns_refused(s, [f.name for f in new])
        for f in new:
            con.execute(f"ALTER TABLE {self._table_sql(s.table_name)} ADD COLUMN {quote_ident(f.name)} {self._declared_type(s, f)}")
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
