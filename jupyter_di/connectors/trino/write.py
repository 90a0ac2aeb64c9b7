"""The Trino destination: typed tables in any catalog, loaded through staging tables.

Why staging tables for every load: Trino commits each statement on its own and has no transaction
spanning several, so the rows of a load go first into staging tables ``_jupyter_di_stage_<hash>_<run>_<n>``,
one per statement in flight (``load.py``; one table per writer, because concurrent INSERTs into one
Iceberg table fail each other's commits: "Failed to replace table due to concurrent updates"), and
one statement then publishes their union:

- FULL_TABLE: ``CREATE TABLE t AS`` for a new table, ``CREATE OR REPLACE TABLE t AS`` where the
  connector replaces a table atomically (Iceberg, Delta Lake: readers see the old snapshot or the
  new one), else the rows go into one ready table which replaces the old one by ``ALTER TABLE ...
  RENAME`` (the old one renamed away, the ready one renamed in: on ``memory`` a reader can find no
  table for the instant between the two renames, never a partial one).  The staging tables have the
  table's columns (and the stream's new ones), so a replace keeps the columns.  Note that ``CREATE OR REPLACE`` also resets table
  properties (an Iceberg partitioning set by hand is not carried over).
- INCREMENTAL with ``unique_constraints``: ``MERGE INTO t USING (the last row per key of the stage)``,
  where the catalog supports MERGE (Iceberg, Delta Lake, Hive ACID tables).  ``memory`` (and the
  other connectors that cannot modify rows) are refused before anything is written.
- INCREMENTAL without keys: ``INSERT INTO t SELECT ... FROM stage``.
Each publish commits a window of ``commit_rows`` rows; ``on_commit`` (the engine saves the bookmark
in the local state store) runs after it.  So the guarantee is at-least-once, and exactly-once in
effect with keys: a run killed between a publish and the state save publishes the same rows again
next time, which MERGE turns into the same rows.  Without keys those rows are appended again.

Identifiers are always quoted; Trino folds them to lower case, so two columns whose names differ
only by case are refused, and the table's columns are matched to the stream's case-insensitively.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from ...errors import ConfigError, SchemaMismatch
from .._shared.arrow_build import int64_array
from .._shared.commit_window import coalesced
from .._shared.sql_names import quote_ident
from ..base import FULL_TABLE, Chunk, CommitCallback, Destination, TableColumn, WriteRequest, WriteResult, internal_name
from .connection import TrinoConfig, TrinoConnector, TrinoError, TrinoSession
from .files import FileStages
from .load import InsertPlan, StatementPool
from .overrides import check_stored, engine_types, table_types
from .types import rounded_values, trino_type

log = logging.getLogger(__name__)

LOAD_BYTES = 16 * 1024 * 1024
"""FULL_TABLE: batches are merged up to this much Arrow data before they are encoded into statements
(INCREMENTAL streams take batches as they come, so a commit window ends where the source cut it)."""
NO_MERGE_CONNECTORS = frozenset({"memory", "blackhole", "tpch", "tpcds", "system", "jmx", "faker"})
"""Connectors known to have no MERGE; others are asked (``EXPLAIN MERGE``) before anything is written."""
MERGE_CONNECTORS = frozenset({"iceberg"})
"""Connectors whose tables take MERGE (Iceberg format 2, Trino's default): no probe before loading."""
REPLACE_CONNECTORS = frozenset({"iceberg", "delta_lake"})
"""Connectors whose CREATE OR REPLACE TABLE is an atomic swap; others get RENAME."""
SEQ = "_jupyter_di_seq"
MERGE_OPTIONS = (
    "write into a catalog whose tables support MERGE (Iceberg, Delta Lake, Hive ACID), "
    "or drop unique_constraints (rows are appended), or use replication_method FULL_TABLE."
)


class TrinoDestination(TrinoConnector, Destination):
    name = "trino"
    transactional = False

    def write(self, request: WriteRequest, chunks: Iterable[Chunk], on_commit: CommitCallback | None = None) -> WriteResult:
        session = self._cfg.connect()
        try:
            return _TableWriter(self._cfg, session, request).run(chunks, on_commit)
        finally:
            session.close()

    # -- the schema-conflict view and column_types (overrides.py) ----------------------------

    takes_column_types = True
    _connector_name: str | None = None

    def _catalog_connector(self, session: TrinoSession) -> str:
        """The catalog's connector name ('' when there is no such catalog), asked once per destination."""
        if self._connector_name is None:
            rows = session.run("SELECT connector_name FROM system.metadata.catalogs WHERE catalog_name = ?", [self._cfg.catalog])
            self._connector_name = str(rows[0][0]) if rows else ""
        return self._connector_name

    def column_type(self, field: pa.Field) -> str | None:
        """The writer's own mapping (``types.trino_type``), which depends on the catalog's connector."""
        if self._connector_name is None:
            session = self._cfg.connect()
            try:
                self._catalog_connector(session)
            finally:
                session.close()
        return trino_type(field, str(self._connector_name))

    def describe_table(self, table: str) -> list[TableColumn] | None:
        session = self._cfg.connect()
        try:
            columns = table_types(session, self._cfg.catalog, self._cfg.schema, table)
        finally:
            session.close()
        return [TableColumn(name, column_type) for name, column_type in columns] or None

    def check_column_types(self, types: dict[str, str], *, stream: str) -> None:
        """Trino parses each override, and the catalog must keep it as asked (an empty probe table, when
        the schema exists; else the writer asks once it has created the schema)."""
        session = self._cfg.connect()
        try:
            wanted = engine_types(session, types, stream=stream)
            connector = self._catalog_connector(session)
            schema = [self._cfg.schema.lower()]
            query = f"SELECT 1 FROM {quote_ident(self._cfg.catalog)}.information_schema.schemata WHERE schema_name = ?"
            if connector and session.run(query, schema):
                check_stored(session, self._cfg, wanted, connector=connector, stream=stream)
        finally:
            session.close()


class _TableWriter:
    """One write of one stream."""

    def __init__(self, cfg: TrinoConfig, session: TrinoSession, request: WriteRequest) -> None:
        self.cfg = cfg
        self.session = session
        self.request = request
        self.settings = request.settings
        self.stream = self.settings.stream
        self.table = self.settings.table_name
        self.columns: dict[str, str] = {}  # lower-case name -> Trino type, in table order
        self.overrides: dict[str, str] = {}  # lower-case name -> the type column_types asks for (as Trino spells it)
        self.connector = ""
        self.keys = [k.lower() for k in self.settings.unique_constraints]
        self.full = self.settings.replication_method == FULL_TABLE
        self.prefix = internal_name("stage", cfg.catalog, cfg.schema, self.table.lower())
        self.run_name = run = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        self.stages = [f"{run}_{i}" for i in range(cfg.concurrency)]
        """This run's staging tables, one per statement in flight: a statement a killed run left
        running on the server can only write into that run's own staging tables, which this run drops."""
        self.ready = f"{run}_ready"
        self.old = f"{self.prefix}_old"
        self.window_keys: list[pa.RecordBatch] = []
        """The key columns of the rows staged since the last publish (to know whether they repeat)."""
        self.staging: TableStages | FileStages = FileStages(cfg, session, self.prefix) if cfg.staging_location else TableStages(self)
        """Where the rows wait until one statement publishes them: Parquet files read through an
        external table when the config has a staging_location (files.py), else staging tables
        filled by INSERT statements (load.py)."""

    # -- names ----------------------------------------------------------------------------

    def rel(self, table: str) -> str:
        return ".".join(quote_ident(p) for p in (self.cfg.catalog, self.cfg.schema, table))

    def _run(self, statement: str, params: list[Any] | None = None) -> list[list[Any]]:
        try:
            return self.session.run(statement, params)
        except TrinoError as exc:
            raise self._mismatch(exc) from None

    def _mismatch(self, exc: TrinoError) -> SchemaMismatch:
        return SchemaMismatch(
            f"could not write into table {self.cfg.catalog}.{self.cfg.schema}.{self.table}: {exc.message}",
            stream=self.stream,
            fix="make the table's column types fit the data (or write into a new table); the table's previous rows are kept.",
        )

    # -- the run --------------------------------------------------------------------------

    def run(self, chunks: Iterable[Chunk], on_commit: CommitCallback | None) -> WriteResult:
        self._check_names(self.request.schema)
        self.connector = self._connector()
        keyed = bool(self.keys) and not self.full
        if keyed and self.connector in NO_MERGE_CONNECTORS:
            raise self._no_merge(f"its {self.connector!r} connector cannot MERGE")
        self.columns = self._table_columns(self.table)
        if not self.columns:  # an existing table proves its schema exists: one statement less
            self._ensure_schema()
        if self._clean_up():
            self.columns = self._table_columns(self.table)
        self._check_overrides()
        how = f"Parquet files in {self.cfg.staging_location}" if isinstance(self.staging, FileStages) else "SQL statements"
        log.info("stream %s: loading %s.%s.%s through %s", self.stream, self.cfg.catalog, self.cfg.schema, self.table, how)
        if keyed and self.connector not in MERGE_CONNECTORS:
            self._check_merge()
        if self.full:
            return self._run_full(chunks, on_commit)
        return self._run_incremental(chunks, on_commit, keyed)

    def _run_full(self, chunks: Iterable[Chunk], on_commit: CommitCallback | None) -> WriteResult:
        columns = dict(self.columns)
        new = self._new_columns(self.request.schema)
        if self.columns:
            self._refuse_new(new)
        columns.update(new)
        if self.keys:
            self._check_keys(columns)
        self.staging.open(columns | ({SEQ: "bigint"} if self.keys else {}))
        rows, seq, state = 0, 0, None
        try:
            for chunk in coalesced(chunks, LOAD_BYTES):
                if chunk.state is not None:
                    state = chunk.state
                batch = chunk.batch
                if not batch.num_rows:
                    continue
                added = self._new_columns(batch.schema, known=columns)
                if added:
                    self._refuse_new(added)
                    self.staging.add_columns(added)
                    columns.update(added)
                if self.keys:
                    batch = batch.append_column(SEQ, int64_array(np.arange(seq, seq + batch.num_rows)))
                    seq += batch.num_rows
                self._load(columns | {SEQ: "bigint"}, batch)
                rows += batch.num_rows
            self._swap(list(columns))
        except BaseException:
            self.staging.close()
            self.staging.clear()
            raise
        self.staging.close()
        if on_commit:
            on_commit(rows, state)
        return WriteResult(rows_written=rows, state=state)

    def _run_incremental(self, chunks: Iterable[Chunk], on_commit: CommitCallback | None, keyed: bool) -> WriteResult:
        new = self._new_columns(self.request.schema)
        if not self.columns:
            self.columns = new
            if keyed:
                self._check_keys(self.columns)
            self._create(self.table, self.columns)
        else:
            self._add_columns(new)
            if keyed:
                self._check_keys(self.columns)
        rows, state = 0, None
        window: list[str] | None = None  # the stage's columns while a window is open
        window_rows = seq = 0
        try:
            for chunk in chunks:
                batch = chunk.batch
                if batch.num_rows:
                    names = [n.lower() for n in batch.schema.names]
                    if window is not None and names != window:
                        self._publish(window, keyed)
                        window = None
                    self._add_columns(self._new_columns(batch.schema))
                    if window is None:
                        window, window_rows = names, 0
                        stage_columns = {n: self.columns[n] for n in names}
                        if keyed:
                            stage_columns[SEQ] = "bigint"
                        self.staging.open(stage_columns)
                    if keyed:
                        batch = batch.append_column(SEQ, int64_array(np.arange(seq, seq + batch.num_rows)))
                        seq += batch.num_rows
                    self._load(self.columns | {SEQ: "bigint"}, batch)
                    window_rows += batch.num_rows
                    rows += batch.num_rows
                if chunk.state is not None:
                    state = chunk.state
                if window is not None and window_rows >= self.cfg.commit_rows:
                    self._publish(window, keyed)
                    window = None
                    if on_commit:
                        on_commit(rows, state)
            if window is not None:
                self._publish(window, keyed)
        except BaseException:
            self.staging.close()
            self.staging.clear()
            raise
        self.staging.close()
        if on_commit:
            on_commit(rows, state)
        return WriteResult(rows_written=rows, state=state)

    # -- catalog --------------------------------------------------------------------------

    def _connector(self) -> str:
        """The catalog's connector name; the staging catalog (Parquet path) is checked in the same
        statement: it must exist and be a Hive catalog (the one that makes external tables)."""
        wanted = [self.cfg.catalog] + ([self.cfg.staging_catalog] if self.cfg.staging_catalog else [])
        rows = self._run(
            f"SELECT catalog_name, connector_name FROM system.metadata.catalogs WHERE catalog_name IN ({', '.join('?' * len(wanted))})",
            list(wanted),
        )
        connectors = {str(r[0]): str(r[1]) for r in rows}
        for key, name in zip(("catalog", "staging_catalog"), wanted):
            if name not in connectors:
                names = sorted(r[0] for r in self._run("SELECT catalog_name FROM system.metadata.catalogs"))
                raise ConfigError(
                    f"{self.cfg.where()} has no catalog {name!r}.", stream=self.stream, fix=f"set {key} to one of: {', '.join(names)}."
                )
        staging = connectors.get(str(self.cfg.staging_catalog))
        if self.cfg.staging_catalog and staging != "hive":
            raise ConfigError(
                f"staging_catalog {self.cfg.staging_catalog!r} is a {staging!r} catalog; the Parquet load path needs a Hive catalog.",
                stream=self.stream,
                fix="set staging_catalog to a Hive catalog of the server that reads staging_location, or leave staging_location out.",
            )
        return connectors[self.cfg.catalog]

    def _ensure_schema(self) -> None:
        query = f"SELECT 1 FROM {quote_ident(self.cfg.catalog)}.information_schema.schemata WHERE schema_name = ?"
        if not self._run(query, [self.cfg.schema.lower()]):
            self._run(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.cfg.catalog)}.{quote_ident(self.cfg.schema)}")

    def _table_columns(self, table: str) -> dict[str, str]:
        """The table's columns, {} when it does not exist.  Asked by name through SHOW COLUMNS, which
        resolves the name as every statement does (a metastore may store odd names escaped)."""
        try:
            rows = self.session.run(f"SHOW COLUMNS FROM {self.rel(table)}")
        except TrinoError as exc:
            if exc.name in ("TABLE_NOT_FOUND", "SCHEMA_NOT_FOUND"):
                return {}
            raise self._mismatch(exc) from None
        return {str(r[0]): str(r[1]) for r in rows}

    def _clean_up(self) -> bool:
        """Drop what a killed run of this table left: staging tables, and a table renamed away for a
        swap (renamed back first if the swap died between its two renames, so nothing is lost).
        True when it renamed the table back."""
        places = [(self.cfg.catalog, self.cfg.schema)]
        if isinstance(self.staging, FileStages):  # its external tables, in the same statement
            places.append((str(self.cfg.staging_catalog), self.cfg.staging_schema))
        query = " UNION ALL ".join(
            f"SELECT {i} AS place, table_name FROM {quote_ident(catalog)}.information_schema.tables "
            "WHERE table_schema = ? AND starts_with(table_name, ?)"
            for i, (catalog, _schema) in enumerate(places)
        )
        found = self._run(query, [value for _catalog, schema in places for value in (schema.lower(), self.prefix)])
        leftovers = sorted(str(name) for place, name in found if place == 0)
        if isinstance(self.staging, FileStages):
            self.staging.sweep({str(name) for place, name in found if place == 1})
        restored = False
        if self.old in leftovers:
            if not self._table_columns(self.table):
                self._run(f"ALTER TABLE {self.rel(self.old)} RENAME TO {self.rel(self.table)}")
                restored = True
            leftovers.remove(self.old)
            self._drop(self.old)
        for name in leftovers:
            self._drop(name)
        return restored

    def _check_names(self, schema: pa.Schema) -> None:
        seen: dict[str, str] = {}
        for name in schema.names:
            if not name.strip():
                raise SchemaMismatch("a column has an empty name.", stream=self.stream, fix="name every column in an upstream block.")
            other = seen.setdefault(name.lower(), name)
            if other != name:
                raise SchemaMismatch(
                    f"columns {other!r} and {name!r} differ only by case, and Trino folds names to lower case.",
                    stream=self.stream,
                    fix="rename one of them in an upstream block.",
                )
        if SEQ in seen:
            raise SchemaMismatch(f"column name {SEQ!r} is reserved for jupyter-di.", stream=self.stream, fix="rename the column.")

    def _check_overrides(self) -> None:
        """The stream's column_types for the columns this run may create, parsed by Trino and kept as
        asked by the catalog (overrides.py), before anything is loaded; existing columns keep their type."""
        asked = {c: t for c, t in self.settings.column_types.items() if c.lower() not in self.columns}
        if not asked:
            return
        self.overrides = engine_types(self.session, asked, stream=self.stream)
        try:
            probe = f"{self.run_name}_types"  # named like this run's staging tables: a killed run's probe is swept with them
            check_stored(self.session, self.cfg, self.overrides, connector=self.connector, stream=self.stream, probe=probe)
        except TrinoError as exc:
            raise self._mismatch(exc) from None

    def _new_columns(self, schema: pa.Schema, known: dict[str, str] | None = None) -> dict[str, str]:
        """The columns of ``schema`` not in the table yet, with the type each is created with: the
        stream's column_types override, else the mapped one."""
        have = self.columns if known is None else known
        return {
            f.name.lower(): self.overrides.get(f.name.lower()) or trino_type(f, self.connector)
            for f in schema
            if f.name.lower() not in have
        }

    def _add_columns(self, new: dict[str, str]) -> None:
        self._refuse_new(new)
        for name, column_type in new.items():
            self._run(f"ALTER TABLE {self.rel(self.table)} ADD COLUMN {quote_ident(name)} {column_type}")
            self.columns[name] = column_type

    def _refuse_new(self, new: dict[str, str]) -> None:
        """New columns for an existing table, unless ``auto_add_new_fields``."""
        if new and not self.settings.auto_add_new_fields:
            names = ", ".join(repr(n) for n in new)
            raise SchemaMismatch(
                f"table {self.cfg.catalog}.{self.cfg.schema}.{self.table} has no column{'s' if len(new) > 1 else ''} {names}.",
                stream=self.stream,
                fix="add the columns to the table, or set auto_add_new_fields: true to let jupyter-di add them.",
            )

    def _check_keys(self, columns: dict[str, str]) -> None:
        missing = [k for k in self.keys if k not in columns]
        if missing:
            raise SchemaMismatch(
                f"unique constraint column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} not in the data.",
                stream=self.stream,
                fix="pick unique constraint columns among the stream's columns.",
            )

    def _create(self, table: str, columns: dict[str, str]) -> None:
        defs = ", ".join(f"{quote_ident(n)} {t}" for n, t in columns.items())
        self._run(f"CREATE TABLE {self.rel(table)} ({defs})")

    def _staged(self, names: list[str]) -> str:
        """The staged rows of the open window (columns ``names``), as a query."""
        return self.staging.query(names)

    def _drop(self, table: str) -> None:
        try:
            self.session.run(f"DROP TABLE IF EXISTS {self.rel(table)}")
        except Exception as exc:  # cleanup only: a staging table left behind is dropped by the next run
            log.warning("could not drop %s: %s", table, exc)

    # -- MERGE ----------------------------------------------------------------------------

    def _no_merge(self, why: str) -> ConfigError:
        return ConfigError(
            f"unique_constraints need MERGE, and catalog {self.cfg.catalog!r} cannot run it ({why}); nothing was written.",
            stream=self.stream,
            fix=MERGE_OPTIONS,
        )

    def _check_merge(self) -> None:
        """Ask the catalog whether its tables take MERGE (EXPLAIN plans it, writing nothing): on the
        table when it exists, else on an empty staging table created like it."""
        table = self.table if self.columns else self.stages[0]
        if not self.columns:
            self._create(table, {"k": "bigint"})
            probe_key = "k"
        else:
            probe_key = next(iter(self.columns))
        key = quote_ident(probe_key)
        try:
            self.session.run(
                f"EXPLAIN MERGE INTO {self.rel(table)} t USING (SELECT {key} FROM {self.rel(table)} WHERE false) s ON t.{key} = s.{key} WHEN MATCHED THEN DELETE"
            )
        except TrinoError as exc:
            if exc.name in ("NOT_SUPPORTED", "PERMISSION_DENIED"):
                raise self._no_merge(exc.message) from None
            raise self._mismatch(exc) from None
        finally:
            if table != self.table:
                self._drop(table)

    def _latest_per_key(self, names: list[str]) -> str:
        """The staged rows, one per key: the last (UPDATE) or first (IGNORE) in stream order.  When
        the window's keys are all different (the usual case: the source's primary key) the rows as
        they are, which spares Trino a window function over the whole window."""
        staged_keys, self.window_keys = self.window_keys, []
        if staged_keys and unique_rows(pa.Table.from_batches(staged_keys)):
            return self._staged(names)
        order = "DESC" if self.settings.unique_conflict_method != "IGNORE" else "ASC"
        cols = ", ".join(quote_ident(n) for n in names)
        keys = ", ".join(quote_ident(k) for k in self.keys)
        rank = f"row_number() OVER (PARTITION BY {keys} ORDER BY {quote_ident(SEQ)} {order})"
        ranked = quote_ident(SEQ + "_rank")
        return f"SELECT {cols} FROM (SELECT {cols}, {rank} AS {ranked} FROM ({self._staged([*names, SEQ])})) WHERE {ranked} = 1"

    def _publish(self, names: list[str], keyed: bool) -> None:
        cols = ", ".join(quote_ident(n) for n in names)
        if not keyed:
            self._run(f"INSERT INTO {self.rel(self.table)} ({cols}) {self._staged(names)}")
        else:
            self._run(self._merge(names))
        self.staging.clear()

    def _merge(self, names: list[str]) -> str:
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in self.keys)
        updates = [n for n in names if n not in self.keys]
        dropped = [d.lower() for d in self.request.dropped_columns]
        dropped = [d for d in dropped if d in self.columns and d not in names and d not in self.keys]
        sets = [f"{quote_ident(n)} = s.{quote_ident(n)}" for n in updates] + [f"{quote_ident(d)} = NULL" for d in dropped]
        matched = f" WHEN MATCHED THEN UPDATE SET {', '.join(sets)}" if sets and self.settings.unique_conflict_method != "IGNORE" else ""
        cols = ", ".join(quote_ident(n) for n in names)
        values = ", ".join(f"s.{quote_ident(n)}" for n in names)
        return (
            f"MERGE INTO {self.rel(self.table)} t USING ({self._latest_per_key(names)}) s ON {on}"
            f"{matched} WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"
        )

    # -- FULL_TABLE -----------------------------------------------------------------------

    def _swap(self, names: list[str]) -> None:
        """Put the staged rows in the table's place in one step a reader cannot see half done.

        With unique_constraints one row per key is kept (the last in stream order, or the first with
        IGNORE), as a table with a unique key would."""
        target = self.rel(self.table)
        source = self._latest_per_key(names) if self.keys else self._staged(names)
        if not self.columns or self.connector in REPLACE_CONNECTORS:
            replace = "OR REPLACE " if self.columns else ""
            try:
                self._run(f"CREATE {replace}TABLE {target} AS {source}")
            except BaseException:
                if not self.columns:  # a connector without transactional DDL (memory) keeps the new table, empty
                    self._drop(self.table)
                raise
            self.staging.clear()
            return
        self._run(f"CREATE TABLE {self.rel(self.ready)} AS {source}")
        self.staging.clear()
        self._run(f"ALTER TABLE {target} RENAME TO {self.rel(self.old)}")
        try:
            self._run(f"ALTER TABLE {self.rel(self.ready)} RENAME TO {target}")
        except BaseException:
            self.session.run(f"ALTER TABLE {self.rel(self.old)} RENAME TO {target}")
            raise
        self._drop(self.old)

    # -- loading --------------------------------------------------------------------------

    def _load(self, columns: dict[str, str], batch: pa.RecordBatch) -> None:
        names = [n.lower() for n in batch.schema.names]
        renamed = batch.rename_columns(names)
        self._check_rounding(renamed, columns)
        if self.keys:
            self.window_keys.append(renamed.select(self.keys))
        self.staging.add(renamed)

    def _check_rounding(self, batch: pa.RecordBatch, columns: dict[str, str]) -> None:
        """Refuse values the cast to the column's type would round (a decimal with more decimal places
        than the column's scale, a timestamp with more fractional digits than its precision): Trino's
        CAST rounds without a word."""
        for name, array in zip(batch.schema.names, batch.columns):
            count = rounded_values(array, columns[name])
            if count:
                source = plain_type(batch.schema.field(name))
                instants = pa.types.is_timestamp(source)
                places = "fractional seconds digits" if instants else "decimal places"
                raise SchemaMismatch(
                    f"column {name!r} of table {self.cfg.catalog}.{self.cfg.schema}.{self.table} is {columns[name]}, and {count} "
                    f"value{'s' if count > 1 else ''} of the stream ({source}) "
                    f"have more {places}; writing them would round them. Nothing of this load was published.",
                    stream=self.stream,
                    fix=(
                        f"give column {name!r} a type with enough {places} (column_types for a new table; Iceberg and Delta Lake "
                        "cannot change an existing column's precision or scale: write into a new table), or round the values in an upstream block."
                    ),
                )


class TableStages:
    """The SQL path: staging tables, one per statement in flight, filled by ``INSERT ... SELECT FROM
    UNNEST`` statements (load.py); their union is the staged rows."""

    def __init__(self, writer: _TableWriter) -> None:
        self.writer = writer
        self.pool: StatementPool | None = None
        self.columns: dict[str, str] = {}

    def open(self, columns: dict[str, str]) -> None:
        self.columns = dict(columns)
        for stage in self.writer.stages:
            self.writer._drop(stage)
            self.writer._create(stage, columns)
        if self.pool is None:
            self.pool = StatementPool(self.writer.cfg, [self.writer.rel(t) for t in self.writer.stages])

    def _drain(self) -> None:
        """Wait for the statements in flight; a refused one becomes the writer's error (naming the table and the fix)."""
        if self.pool is not None:
            try:
                self.pool.drain()
            except TrinoError as exc:
                raise self.writer._mismatch(exc) from None

    def add_columns(self, added: dict[str, str]) -> None:
        self._drain()
        for name, column_type in added.items():
            for stage in self.writer.stages:
                self.writer._run(f"ALTER TABLE {self.writer.rel(stage)} ADD COLUMN {quote_ident(name)} {column_type}")
        self.columns.update(added)

    def add(self, batch: pa.RecordBatch) -> None:
        assert self.pool is not None
        names = batch.schema.names
        plan = InsertPlan(names, [self.columns[n] for n in names], [plain_type(f) for f in batch.schema], self.pool.table_bytes)
        try:
            for statement, _rows in plan.statements(batch, self.writer.cfg.statement_bytes, self.writer.stream):
                self.pool.submit(statement)
        except TrinoError as exc:  # an earlier statement failed
            raise self.writer._mismatch(exc) from None

    def query(self, names: list[str]) -> str:
        self._drain()
        cols = ", ".join(quote_ident(n) for n in names)
        return " UNION ALL ".join(f"SELECT {cols} FROM {self.writer.rel(stage)}" for stage in self.writer.stages)

    def clear(self) -> None:
        for stage in self.writer.stages:
            self.writer._drop(stage)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def unique_rows(table: pa.Table) -> bool:
    """No two rows of ``table`` are equal (nulls count as equal to each other)."""
    return table.num_rows == table.group_by(table.column_names).aggregate([]).num_rows


def plain_type(field: pa.Field) -> pa.DataType:
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if isinstance(t, pa.BaseExtensionType):
        t = t.storage_type
    return t
