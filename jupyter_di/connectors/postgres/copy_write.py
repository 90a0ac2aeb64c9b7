"""The PostgreSQL destination taking a stream as binary COPY data (``BinaryCopy``) as it is.

When: a FULL_TABLE write without unique constraints whose every column has, in the table (or in the
table the Arrow path would create), exactly the source column's type.  Then the source server's
COPY bytes are what ADBC would encode from the Arrow batches, so they are written with one
``COPY ... FROM STDIN (FORMAT binary)`` instead: no decode, no encode.  Anything else (another type,
a column to add, an upsert) answers None before reading a byte, and the stream goes through Arrow.

What stays as in ``write.py``: the table is created (same column types) or truncated, the rows and
the state commit in one transaction, a failure anywhere (the source's read included) rolls it all
back, so the old rows stay; the row count is the server's, checked against the source's.  No NUL
check: PostgreSQL text and jsonb cannot hold U+0000, so a PostgreSQL source never sends one
(``json``, which can hold ``\\u0000`` escapes, is not passed through: ``PgColumn.copy_safe``).

Why psycopg here, not ADBC: ADBC has no call for raw COPY data, and the COPY must run in the
transaction that truncates the table and stores the state.  ``PsycopgSession`` gives the table
writer the few calls it makes on an ``AdbcSession``, so table creation is the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from ...errors import BlockFailed
from ..base import FULL_TABLE, BinaryCopy, CommitCallback, WriteRequest, WriteResult, is_change_stream
from .types import table_columns
from .write import _TableWriter


class PsycopgSession:
    """The ``AdbcSession`` calls ``_TableWriter`` makes, over a psycopg connection (``$n`` parameters)."""

    dollar_params = True

    def __init__(self, conn: Any) -> None:
        import psycopg

        self.connection = conn
        self._cur = psycopg.RawCursor(conn)
        self.last_error: BaseException | None = None

    def execute(self, query: str, params: Sequence[Any] | None = None) -> int:
        try:
            self._cur.execute(query, params)
        except Exception as exc:
            self.last_error = exc
            self.rollback()
            raise
        return self._cur.rowcount

    def fetchall(self, query: str, params: Sequence[Any] | None = None) -> list[tuple]:
        self.execute(query, params)
        return list(self._cur.fetchall())

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()


def write_binary_copy(cfg: Any, request: WriteRequest, copy: BinaryCopy, on_commit: CommitCallback | None) -> WriteResult | None:
    s = request.settings
    if s.replication_method != FULL_TABLE or s.unique_constraints or is_change_stream(request.schema):
        return None
    if s.partitions not in (None, 1):  # the stream asks for a read in parts: through Arrow
        return None
    if [c.name for c in copy.columns] != request.schema.names:
        return None
    conn = cfg.psycopg(autocommit=False)
    try:
        return _CopyWriter(PsycopgSession(conn), cfg.schema, request, cfg.upsert_fillfactor).run_copy(copy, on_commit)
    finally:
        conn.close()


class _CopyWriter(_TableWriter):
    def _types_match(self, copy: BinaryCopy) -> bool:
        """Every column has the source's type in the table, or would get it when the table is created."""
        oid = self._oid()
        if oid is None:
            have = {f.name: self._declared_type(f) for f in self.request.schema}
        else:
            have = {c.name: c.sql_type for c in table_columns(self.conn, [oid])[oid]}
        return all(have.get(c.name) == c.sql_type for c in copy.columns)

    def run_copy(self, copy: BinaryCopy, on_commit: CommitCallback | None) -> WriteResult | None:
        import psycopg

        if not self._types_match(copy):
            self._rollback()
            return None
        source_failed = False
        try:
            if self.request.state_key:
                self._ensure_state_table()
            if not self._prepare_table(self.request.schema):
                self._exec(sql.SQL("TRUNCATE {}").format(self.rel))
            columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in copy.columns)
            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(self.rel, columns)
            with self.conn.connection.cursor() as cur:
                with cur.copy(statement) as target:
                    pieces = copy.chunks()
                    while True:
                        source_failed = True
                        piece = next(pieces, None)
                        source_failed = False
                        if piece is None:
                            break
                        target.write(piece)
                rows = cur.rowcount
            if copy.rows is not None and rows != copy.rows:
                raise BlockFailed(
                    f"the source sent {copy.rows} rows but table {self.schema}.{self.table} took {rows}; nothing was committed.",
                    stream=self.settings.stream,
                    fix="run the sync again; if it repeats, report it.",
                )
            self._commit(None)
            if on_commit:
                on_commit(rows, None)
        except psycopg.Error as exc:
            self._rollback()
            if source_failed:
                raise  # the source's read, not one of this write's statements
            raise self._mismatch(exc) from None
        except BaseException:
            self._rollback()
            raise
        finally:
            copy.close()
        return WriteResult(rows_written=rows, state=None)
