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

from ..base import BinaryCopy, CopyColumn

CHUNK_BYTES = 1024 * 1024
"""About this much COPY data per piece handed to the destination (one write call each)."""


class PgBinaryCopy(BinaryCopy):
    """One ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` on a connection of its own (autocommit: one
    statement, one snapshot), started when ``chunks`` is first iterated; ``close`` ends it (closing
    the connection stops the server's side of a COPY that was not read to its end)."""

    def __init__(self, conn: Any, query: str, columns: list[CopyColumn], schema: pa.Schema) -> None:
        self._conn = conn  # a psycopg connection, used through its libpq handle only
        self._query = query
        self.columns = columns
        self.schema = schema
        self.rows: int | None = None

    def chunks(self) -> Iterator[bytes]:
        from psycopg import pq

        pgconn = self._conn.pgconn
        try:
            pgconn.nonblocking = 0  # our own connection: a blocking send of one short statement
            pgconn.send_query(self._query.encode())
            result = pgconn.get_result()
            if result is None or result.status != pq.ExecStatus.COPY_OUT:
                raise _failed(result, pgconn)
            buffer = bytearray()
            while True:
                size, data = pgconn.get_copy_data(0)
                if size == -1:  # the COPY ended: its outcome is the next result
                    break
                if size == -2:
                    raise _failed(None, pgconn)
                buffer += data
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    del buffer[:]
            if buffer:
                yield bytes(buffer)
            result = pgconn.get_result()
            if result is None or result.status != pq.ExecStatus.COMMAND_OK:
                raise _failed(result, pgconn)
            self.rows = int(result.command_tuples or 0)
            while pgconn.get_result() is not None:
                pass
        finally:
            self.close()

    def close(self) -> None:
        self._conn.close()


def _failed(result: Any, pgconn: Any) -> Exception:
    """The server's error as psycopg raises it (its SQLSTATE class), else libpq's message."""
    import psycopg
    from psycopg import errors

    if result is not None and result.status == psycopg.pq.ExecStatus.FATAL_ERROR:
        return errors.error_from_result(result, encoding="utf-8")
    message = pgconn.error_message.decode(errors="replace").strip() if pgconn.error_message else "the COPY stopped"
    return psycopg.OperationalError(message)
