"""Two destination blocks writing into one DuckDB file create the state table at once on their first
run: DuckDB refuses a CREATE while another connection's is not committed ("Catalog write-write
conflict on create"), which failed about one in three such first runs."""

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
