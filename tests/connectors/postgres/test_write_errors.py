"""The PostgreSQL destination reports the first error of a failed write, never PostgreSQL's
"current transaction is aborted" that any later statement of the aborted transaction gets."""

from __future__ import annotations

import adbc_driver_manager
import pyarrow as pa
import pytest

from jupyter_di.connectors.base import Chunk, StreamSettings, WriteRequest
from jupyter_di.connectors.postgres import PostgresDestination
from jupyter_di.connectors.postgres.connection import PgConfig
from jupyter_di.errors import SchemaMismatch

from .test_log_based import Sync, Target, log_pg, make_items, source_rows, sql  # noqa: F401 - the fixture


def test_a_failed_copy_is_rolled_back_before_the_next_statement(pg_config):
    session = PgConfig(pg_config).adbc(autocommit=False)
    try:
        session.execute("CREATE TEMPORARY TABLE once (a int8 UNIQUE)")
        session.commit()
        with pytest.raises(adbc_driver_manager.IntegrityError) as first:
            session.ingest("once", pa.record_batch([pa.array([1, 1])], names=["a"]), temporary=True)
        assert session.last_error is first.value
        # without the rollback, ADBC answers "Failed to begin transaction: current transaction is aborted"
        session.execute("INSERT INTO once VALUES (2)")
        session.commit()
        assert session.fetchall("SELECT a FROM once") == [(2,)]
    finally:
        session.close()


def test_a_failing_change_window_reports_its_own_error_and_commits_nothing(log_pg, tmp_path):
    make_items(log_pg, rows=5)
    target = Target("postgresql", log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path, delete_mode="hard")
    sync.run()
    saved = dict(sync.state)
    # the user's rule at the destination: the window's delete runs, then its upsert breaks the rule
    sql(log_pg, "ALTER TABLE dst.items ADD CONSTRAINT small_n CHECK (n < 1000)")
    sql(log_pg, "DELETE FROM items WHERE id = 1", "UPDATE items SET n = 5000 WHERE id = 2", "INSERT INTO items (id, v) VALUES (9, 'nine')")
    with pytest.raises(SchemaMismatch) as failed:
        sync.run()
    message = str(failed.value)
    assert "small_n" in message and "aborted" not in message
    assert sync.state == saved  # the position stays where the destination's rows are
    assert [r[0] for r in target.rows()] == [1, 2, 3, 4, 5]  # the delete was rolled back with the rest
    sql(log_pg, "ALTER TABLE dst.items DROP CONSTRAINT small_n")
    sync.run()
    assert [r[0] for r in target.rows()] == [r[0] for r in source_rows(log_pg)] == [2, 3, 4, 5, 9]


def test_a_source_error_passing_through_the_write_keeps_its_own_message(pg_config):
    class SourceFailed(adbc_driver_manager.OperationalError):
        pass

    schema = pa.schema([pa.field("id", pa.int64())])

    def chunks():
        yield Chunk(batch=pa.record_batch([pa.array([1, 2])], schema=schema))
        raise SourceFailed("the source's read failed", status_code=adbc_driver_manager.AdbcStatusCode.IO)

    settings = StreamSettings(stream="s", key_properties=["id"], unique_constraints=["id"], replication_method="INCREMENTAL")
    with pytest.raises(SourceFailed, match="the source's read failed"):
        PostgresDestination(pg_config).write(WriteRequest(settings=settings, schema=schema), chunks())
