"""A LOG_BASED stream whose source is a standby (a real one: ``pg_basebackup -R`` of the test server,
streaming from it) fails up front with one message, and creates and writes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jupyter_di.connectors.base import FULL_TABLE, ReadRequest, StreamSettings
from jupyter_di.connectors.postgres import PostgresSource
from jupyter_di.errors import ConfigError
from tests.connectors.postgres.test_log_based import Sync, Target, _conninfo, make_items, source_rows
from tests.support import postgres


@pytest.fixture
def standby(pg_server, tmp_path_factory) -> Iterator[dict[str, Any]]:
    env = postgres.start_standby(pg_server["host"], pg_server["port"])
    try:
        yield {"host": env["JDI_TEST_PG_HOST"], "port": int(env["JDI_TEST_PG_PORT"]), "username": env["JDI_TEST_PG_USER"]}
    finally:
        postgres.stop(env["JDI_TEST_PG_DATA"])


def replayed(cfg: dict[str, Any], query: str, timeout: float = 30) -> None:
    """Wait until the standby has replayed what makes ``query`` return a row."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(_conninfo(cfg), autocommit=True) as conn:
                if conn.execute(query).fetchone():
                    return
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):  # the database or table is not replayed yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the standby did not replay {query!r} in {timeout} s")
        time.sleep(0.1)


def test_a_standby_is_refused_up_front_and_nothing_is_created(pg_config, standby, tmp_path):
    make_items(pg_config)
    replica = dict(pg_config, host=standby["host"], port=standby["port"])
    replayed(replica, "SELECT 1 FROM items WHERE id = 5")
    with psycopg.connect(_conninfo(replica)) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    target = Target("duckdb", pg_config, tmp_path)
    sync = Sync(replica, target, tmp_path, delete_mode="hard")
    with pytest.raises(ConfigError) as exc:
        sync.run()
    text = str(exc.value)
    assert exc.value.stream == "items"
    assert "standby" in text and "PostgreSQL 15" in text, text
    assert "primary" in (exc.value.fix or ""), exc.value.fix
    assert not (tmp_path / "w.duckdb").exists()  # nothing written
    with psycopg.connect(_conninfo(pg_config)) as conn:  # nothing created on the primary (nor, replayed, on the standby)
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone()[0] == 0
    # the standby still serves the other methods, and the primary the log
    settings = StreamSettings(stream="items", replication_method=FULL_TABLE)
    with PostgresSource(replica) as source:
        assert source.read(ReadRequest(settings=settings)).read_all().num_rows == 5
    Sync(pg_config, target, tmp_path, delete_mode="hard").run()
    assert [r[0] for r in target.rows()] == [r[0] for r in source_rows(pg_config)]


def test_a_standby_offers_its_copy_data_but_no_table_to_scan(pg_config, standby):
    """DuckDB's scanner reads in parallel on connections sharing one exported snapshot, which a standby
    may not give: its FULL_TABLE streams are offered as COPY data only (``BinaryCopy.table`` None), so a
    DuckDB destination reads them through Arrow; the primary offers its table."""
    make_items(pg_config)
    replica = dict(pg_config, host=standby["host"], port=standby["port"])
    replayed(replica, "SELECT 1 FROM items WHERE id = 5")
    request = ReadRequest(StreamSettings("items", replication_method=FULL_TABLE, columns=["id"]))
    for config, scannable in ((replica, False), (pg_config, True)):
        with PostgresSource(config) as src:
            offer = src.binary_copy(request)
            assert offer is not None and [c.name for c in offer.columns] == ["id"]
            assert (offer.table is not None) is scannable
            if scannable:
                assert offer.table is not None and (offer.table.schema, offer.table.name) == ("public", "items")
                assert "password" not in offer.table.conninfo
            offer.close()
