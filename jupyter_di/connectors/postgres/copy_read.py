"""A PostgreSQL stream as the server's own binary COPY data (``BinaryCopy``), for a destination that
stores the same column types: the bytes go from one server to the other as they are.

Why: a PostgreSQL -> PostgreSQL FULL_TABLE read decoded into Arrow and encoded again costs about
1.2 s of client CPU per 1M rows of the benchmark table (ADBC's decoder 0.5 s, its encoder 0.7 s), on
a machine where the two servers already need most of the cores; passing the bytes through costs
0.4 s (measured: ``benchmarks/sync.py``).

Why libpq's calls directly (psycopg's ``pgconn``) and not ``Copy.read``: the server sends one COPY
message per row and psycopg's ``Copy`` iterates them in Python (0.9 s of CPU per 1M rows, no faster
than Arrow); ``PQgetCopyData`` in a tight loop gathering about a megabyte per piece costs 0.4 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ..base import BinaryCopy, CopyColumn, PostgresTable

CHUNK_BYTES = 1024 * 1024
"""About this much COPY data per piece handed to the destination (one write call each)."""


class PgBinaryCopy(BinaryCopy):
    """One ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` on a connection of its own (autocommit: one
    statement, one snapshot), started when ``chunks`` is first iterated; ``close`` ends it (closing
    the connection stops the server's side of a COPY that was not read to its end)."""

    def __init__(self, conn: Any, query: str, columns: list[CopyColumn], schema: pa.Schema, table: PostgresTable | None) -> None:
        self._conn = conn  # a psycopg connection, used through its libpq handle only
        self._query = query
        self.columns = columns
        self.schema = schema
        self.rows: int | None = None
        self.table = table

    def chunks(self) -> Iterator[bytes]:
        from psycopg import pq

        pgconn = self._conn.pgconn
        wait = _Waiter(pgconn)
        try:
            pgconn.send_query(self._query.encode())
            while pgconn.flush():  # nonblocking: the rest of a long statement waits for the socket
                wait.writable()
            result = wait.next_result()
            if result is None or result.status != pq.ExecStatus.COPY_OUT:
                raise _failed(result, pgconn)
            buffer = bytearray()
            while True:
                size, data = pgconn.get_copy_data(1)  # never blocks: libpq would hold the interpreter lock
                if size > 0:
                    buffer += data
                    if len(buffer) >= CHUNK_BYTES:
                        yield bytes(buffer)
                        del buffer[:]
                elif size == 0:  # nothing buffered: wait for the server without the lock
                    wait.readable()
                    pgconn.consume_input()
                elif size == -1:  # the COPY ended: its outcome is the next result
                    break
                else:
                    raise _failed(None, pgconn)
            if buffer:
                yield bytes(buffer)
            result = wait.next_result()
            if result is None or result.status != pq.ExecStatus.COMMAND_OK:
                raise _failed(result, pgconn)
            self.rows = int(result.command_tuples or 0)
            while wait.next_result() is not None:
                pass
        finally:
            wait.close()
            self.close()

    def close(self) -> None:
        self._conn.close()


class _Waiter:
    """Waits until the connection's socket is readable (or writable) without the interpreter lock, so
    other threads (a kernel's display, other streams, Dask's heartbeats) run while the server works:
    libpq's own blocking calls hold the lock (measured: a counting thread stalls during them)."""

    def __init__(self, pgconn: Any) -> None:
        import selectors

        self.pgconn = pgconn
        self.selector = selectors.DefaultSelector()
        self.selector.register(pgconn.socket, selectors.EVENT_READ)

    def readable(self) -> None:
        self.selector.select()

    def writable(self) -> None:
        import selectors

        self.selector.modify(self.pgconn.socket, selectors.EVENT_WRITE)
        self.selector.select()
        self.selector.modify(self.pgconn.socket, selectors.EVENT_READ)

    def next_result(self) -> Any:
        """libpq's next result, read without blocking in libpq."""
        self.pgconn.consume_input()
        while self.pgconn.is_busy():
            self.readable()
            self.pgconn.consume_input()
        return self.pgconn.get_result()

    def close(self) -> None:
        self.selector.close()


def _failed(result: Any, pgconn: Any) -> Exception:
    """The server's error as psycopg raises it (its SQLSTATE class), else libpq's message."""
    import psycopg
    from psycopg import errors

    if result is not None and result.status == psycopg.pq.ExecStatus.FATAL_ERROR:
        return errors.error_from_result(result, encoding="utf-8")
    message = pgconn.error_message.decode(errors="replace").strip() if pgconn.error_message else "the COPY stopped"
    return psycopg.OperationalError(message)
