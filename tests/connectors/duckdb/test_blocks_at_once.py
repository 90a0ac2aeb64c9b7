"""Two destination blocks writing into one DuckDB file at once, each on its own thread and connection.

They create the state table at once on their first run: DuckDB refuses a CREATE while another
connection's is not committed ("Catalog write-write conflict on create"; about one first run in
three failed).  And they open the file at once: a connection could see the instance before DuckDB's
Python client had registered its functions there ("python_arrow_scan does not exist")."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa

from jupyter_di.connectors.base import INCREMENTAL, Chunk, StreamSettings, WriteRequest
from jupyter_di.connectors.duckdb import DuckDBDestination


def test_the_state_table_created_by_another_connection_at_that_moment_is_waited_for(tmp_path):
    path = tmp_path / "out.duckdb"
    other = duckdb.connect(str(path))  # the other block's connection: one DuckDB instance in the process
    other.execute("BEGIN")
    other.execute("CREATE TABLE IF NOT EXISTS _jupyter_di_state (state_key TEXT PRIMARY KEY, state JSON, updated_at TIMESTAMP)")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    settings = StreamSettings(stream="t", replication_method=INCREMENTAL, bookmark_properties=["id"])
    batch = pa.record_batch({"id": [1, 2, 3]})
    with DuckDBDestination({"path": str(path)}) as destination:
        result = destination.write(WriteRequest(settings, batch.schema, state_key="k"), [Chunk(batch, {"bookmark": {"id": 3}})])
        assert result.rows_written == 3
        assert destination.load_state("k") == {"bookmark": {"id": 3}}
    other.close()


def test_a_schema_created_by_another_connection_at_that_moment_is_waited_for(tmp_path):
    path = tmp_path / "out.duckdb"
    other = duckdb.connect(str(path))
    other.execute("BEGIN")
    other.execute("CREATE SCHEMA IF NOT EXISTS raw")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    batch = pa.record_batch({"id": [1, 2, 3]})
    with DuckDBDestination({"path": str(path), "schema": "raw"}) as destination:
        result = destination.write(WriteRequest(StreamSettings(stream="t"), batch.schema), [Chunk(batch)])
        assert result.rows_written == 3
    assert other.execute("SELECT count(*), sum(id) FROM raw.t").fetchone() == (3, 6)
    other.close()


def test_two_threads_opening_one_file_at_once_both_write(tmp_path):
    """Before the lock around ``duckdb.connect``: 123 to 289 of these 800 writes failed."""
    path = tmp_path / "out.duckdb"
    destination = DuckDBDestination({"path": str(path)})
    with destination._connect() as con:
        con.execute("CREATE TABLE t (a INT)")
    together = threading.Barrier(2)
    errors: list[str] = []

    def write(n: int) -> None:
        for _ in range(400):
            together.wait()
            try:
                with destination._connect() as con:
                    con.register(f"v{n}", pa.table({"a": [1, 2, 3]}))
                    con.execute(f"INSERT INTO t SELECT a FROM v{n}")
            except duckdb.Error as exc:
                errors.append(str(exc).splitlines()[0])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with destination._connect() as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (2400,)
