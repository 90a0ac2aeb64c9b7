"""Fast loads into a Trino table: ``INSERT ... SELECT FROM UNNEST(<one literal per column>)``
statements sized by bytes, several in flight at once.

Why this shape and not ``INSERT ... VALUES (...), (...)``: Trino analyses and plans every row of a
VALUES list, and every literal, as an expression of its own, so a statement of 5,000 four-column
rows took 4.7 s on the test server (about 1,000 rows/s).  Here each column of a run of rows is one
string literal holding a JSON array of the values' texts (``literals.py``), cast to the column's
type and unnested: the statement has a handful of expressions whatever its row count.  Statements
are cut by bytes, not rows, so wide and narrow rows both stay under the server's
``query.max-length``; each statement commits on its own (they load a staging table, which the
writer then publishes in one statement).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import SchemaMismatch
from .._shared.sql_names import quote_ident
from .connection import TrinoConfig, TrinoSession
from .literals import column_literal, texts
from .types import unnest_plan

FILL = 0.9
"""Runs of rows are first cut at this share of the byte budget (by the values' text lengths; JSON and
SQL escapes add to that), and a statement that still comes out too long is cut in two."""


INSERT = "INSERT INTO "


class InsertPlan:
    """How batches of given columns are inserted: the statement after ``INSERT INTO <table>`` (the
    pool puts each statement into the staging table of the writer that runs it)."""

    def __init__(self, names: list[str], column_types: list[str], sources: list[pa.DataType], table_bytes: int = 0) -> None:
        self.names = names
        self.arrays = []
        selects = []
        for i, (column_type, source) in enumerate(zip(column_types, sources)):
            array, select = unnest_plan(column_type, source)
            self.arrays.append(array)
            selects.append(select.format(f"c{i}"))
        cols = ", ".join(quote_ident(n) for n in names)
        aliases = ", ".join(f"c{i}" for i in range(len(names)))
        self.head = f" ({cols}) SELECT {', '.join(selects)} FROM UNNEST("
        self.reserved = len(INSERT) + table_bytes
        self.tail = f") AS u({aliases})"

    def statements(self, batch: pa.RecordBatch, max_bytes: int, stream: str) -> Iterator[tuple[str, int]]:
        """The batch as statements of at most ``max_bytes`` each, with their row counts."""
        columns = [texts(batch.column(name)) for name in self.names]
        sizes = np.full(batch.num_rows, 3 * len(columns), dtype=np.int64)  # quotes and a comma per value
        for col in columns:
            sizes += np.asarray(pc.fill_null(pc.binary_length(col), 4), dtype=np.int64)
        ends = np.cumsum(sizes)
        budget = max(1, int(max_bytes * FILL) - self.reserved - len(self.head) - len(self.tail))
        start = 0
        while start < batch.num_rows:
            base = int(ends[start - 1]) if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, base + budget, side="right")))
            yield from self._fitting(columns, start, stop, max_bytes, stream)
            start = stop

    def _fitting(self, columns: list[pa.Array], start: int, stop: int, max_bytes: int, stream: str) -> Iterator[tuple[str, int]]:
        text = self._text(columns, start, stop)
        if len(text.encode("utf-8")) + self.reserved <= max_bytes:
            yield text, stop - start
        elif stop - start == 1:
            raise SchemaMismatch(
                f"a row needs {len(text.encode('utf-8')) + self.reserved} bytes of SQL, more than max_statement_bytes ({max_bytes}).",
                stream=stream,
                fix="raise max_statement_bytes (and the server's query.max-length), or leave the widest column out.",
            )
        else:
            middle = (start + stop) // 2
            yield from self._fitting(columns, start, middle, max_bytes, stream)
            yield from self._fitting(columns, middle, stop, max_bytes, stream)

    def _text(self, columns: list[pa.Array], start: int, stop: int) -> str:
        arrays = ", ".join(template.format(column_literal(col.slice(start, stop - start))) for template, col in zip(self.arrays, columns))
        return self.head + arrays + self.tail


class StatementPool:
    """Runs INSERT statements on one session per table of ``tables`` at once (each writer thread
    inserts into its own table, so their commits never conflict); ``drain`` waits and re-raises the
    first error.

    Submitting blocks while as many statements as tables are already waiting, so the text of at most
    twice that many statements is held in memory.
    """

    def __init__(self, cfg: TrinoConfig, tables: list[str]) -> None:
        self._cfg = cfg
        self.tables = tables
        self._local = threading.local()
        self._sessions: list[TrinoSession] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=len(tables), thread_name_prefix="jdi-trino")
        self._slots = threading.BoundedSemaphore(len(tables) * 2)
        self._pending: set[Future] = set()

    @property
    def table_bytes(self) -> int:
        return max(len(t.encode("utf-8")) for t in self.tables)

    def _writer(self) -> tuple[TrinoSession, str]:
        writer = getattr(self._local, "writer", None)
        if writer is None:
            with self._lock:
                table = self.tables[len(self._sessions)]
                session = self._cfg.connect()
                self._sessions.append(session)
            writer = self._local.writer = (session, table)
        return writer

    def _run(self, statement: str) -> None:
        try:
            session, table = self._writer()
            session.run(INSERT + table + statement)
        finally:
            self._slots.release()

    def submit(self, statement: str) -> None:
        """Queue ``statement`` (an ``InsertPlan`` statement, without ``INSERT INTO <table>``)."""
        self._raise_failed()
        self._slots.acquire()
        future = self._executor.submit(self._run, statement)
        self._pending.add(future)

    def _raise_failed(self) -> None:
        done = {f for f in self._pending if f.done()}
        self._pending -= done
        for future in done:
            future.result()

    def drain(self) -> None:
        """Wait for every statement submitted; the first failure is raised (the rest are waited for)."""
        pending, self._pending = self._pending, set()
        finished, _ = wait(pending, return_when=FIRST_EXCEPTION)
        failed = next((f for f in finished if f.exception() is not None), None)
        if failed is not None:
            wait(pending)
            failed.result()

    def close(self, on_close: Callable[[], None] | None = None) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        for session in self._sessions:
            session.close()
        if on_close:
            on_close()
