"""A thin session over ADBC's low-level PostgreSQL API: SQL, Arrow reads, COPY-binary ingest.

Why not ADBC's DB-API module: importing ``adbc_driver_manager.dbapi`` pulls in
pandas, polars and pyarrow.dataset (about 90 MB of RSS and 0.4 s per process),
while the connector needs five calls: run a statement, fetch a small result,
stream a query as Arrow, ingest a batch, commit/rollback.  The low-level
classes (``AdbcDatabase``/``AdbcConnection``/``AdbcStatement``) do exactly that.

Parameters use ``$1, $2`` placeholders and are bound as a one-row Arrow batch,
so values never become SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import adbc_driver_manager as dm
import pyarrow as pa

from .._shared.arrow_build import value_array
from .encoding import raw_text

BATCH_SIZE_HINT = "adbc.postgresql.batch_size_hint_bytes"
INGEST_SLICE_ROWS = 4096


def _blocking(fn, cancel):
    """Run a driver call so Ctrl-C cancels it (ADBC's own helper when available)."""
    helper = getattr(getattr(dm, "_lib", None), "_blocking_call", None)
    if helper is None:
        return fn()
    return helper(fn, (), {}, cancel)


class AdbcSession:
    """One PostgreSQL connection through ADBC."""

    def __init__(self, conninfo: str, autocommit: bool) -> None:
        import adbc_driver_postgresql

        self._db = adbc_driver_postgresql.connect(conninfo)
        try:
            self._conn = dm.AdbcConnection(self._db)
        except BaseException:
            self._db.close()
            raise
        if not autocommit:
            self._conn.set_autocommit(False)
        self._autocommit = autocommit
        self._closed = False
        self.last_error: BaseException | None = None
        """The last driver error of a statement of this session (rolled back at once)."""
        self.raw_text: bool | None = None
        """The database is SQL_ASCII and the session reads its bytes as stored (None: not read yet)."""

    def _failed(self, exc: BaseException) -> None:
        """A statement failed: in a transaction, roll it back before anything else runs.

        Why: PostgreSQL refuses every later statement of an aborted transaction, and ADBC reports
        that refusal ("Failed to begin transaction: current transaction is aborted") instead of
        the cause; rolling back at once keeps the first error the one anybody sees, whatever the
        caller does next."""
        self.last_error = exc
        if not self._autocommit:
            try:
                self._conn.rollback()
            except Exception:  # the connection is gone: nothing of the transaction is committed
                pass

    def _statement(self, query: str, params: Sequence[Any] | None) -> dm.AdbcStatement:
        stmt = dm.AdbcStatement(self._conn)
        stmt.set_sql_query(query)
        if params:
            stmt.bind(pa.RecordBatch.from_arrays([value_array(p) for p in params], names=[f"p{i}" for i in range(len(params))]))
        return stmt

    def execute(self, query: str, params: Sequence[Any] | None = None) -> int:
        """Run a statement that returns no rows; the number of rows it touched (or -1)."""
        stmt = self._statement(query, params)
        try:
            return _blocking(stmt.execute_update, stmt.cancel)
        except dm.Error as exc:
            self._failed(exc)
            raise
        finally:
            stmt.close()

    def fetchall(self, query: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run a small query; its rows as tuples."""
        stmt = self._statement(query, params)
        try:
            handle, _ = _blocking(stmt.execute_query, stmt.cancel)
            table = pa.RecordBatchReader._import_from_c(handle.address).read_all()
        except dm.Error as exc:
            self._failed(exc)
            raise
        finally:
            stmt.close()
        columns = [c.to_pylist() for c in table.columns]
        return list(zip(*columns))

    def stream(self, query: str, batch_size_hint_bytes: int) -> tuple[pa.RecordBatchReader, dm.AdbcStatement]:
        """Stream a query (COPY binary under the hood); close the statement when done.  Before the
        session's first read, ``raw_text`` says whether its text must be checked (``encoding``)."""
        if self.raw_text is None:
            self.raw_text = raw_text(self)
        stmt = self._statement(query, None)
        try:
            stmt.set_options(**{BATCH_SIZE_HINT: str(batch_size_hint_bytes)})
            handle, _ = _blocking(stmt.execute_query, stmt.cancel)
        except BaseException as exc:  # closed here: the caller never got it, and an open statement blocks close()
            stmt.close()
            if isinstance(exc, dm.Error):
                self._failed(exc)
            raise
        return pa.RecordBatchReader._import_from_c(handle.address), stmt

    def ingest(self, table: str, data: pa.RecordBatch, *, schema: str | None = None, temporary: bool = False) -> None:
        """Append ``data`` to an existing table with one binary COPY (columns matched by name).

        The batch is handed over as a stream of small slices: ADBC encodes and
        sends one slice while the server parses the previous one, instead of
        encoding the whole batch before the server starts.
        """
        stmt = dm.AdbcStatement(self._conn)
        try:
            options = {dm.INGEST_OPTION_TARGET_TABLE: table, dm.INGEST_OPTION_MODE: dm.INGEST_OPTION_MODE_APPEND}
            if schema is not None:
                options[dm.StatementOptions.INGEST_TARGET_DB_SCHEMA.value] = schema
            if temporary:
                options[dm.StatementOptions.INGEST_TEMPORARY.value] = "true"
            stmt.set_options(**options)
            slices = (data.slice(i, INGEST_SLICE_ROWS) for i in range(0, data.num_rows, INGEST_SLICE_ROWS))
            stmt.bind_stream(pa.RecordBatchReader.from_batches(data.schema, slices))
            _blocking(stmt.execute_update, stmt.cancel)
        except dm.Error as exc:
            self._failed(exc)
            raise
        finally:
            stmt.close()

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.close()
        finally:
            self._db.close()


def server_message(exc: BaseException) -> str:
    """The server's own error message of a driver error (``PG_DIAG_MESSAGE_PRIMARY``), else its first line."""
    for key, value in getattr(exc, "details", None) or []:
        if key == b"PG_DIAG_MESSAGE_PRIMARY":
            return value.decode(errors="replace")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
