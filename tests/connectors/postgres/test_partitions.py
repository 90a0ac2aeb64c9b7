"""Partitioned PostgreSQL reads (``partitions: N | auto``): every row once, one snapshot, safe bookmarks."""

from __future__ import annotations

import datetime as dt
import threading

import pyarrow as pa
import pytest

from jupyter_di.connectors.base import ReadRequest, StreamSettings
from jupyter_di.connectors.postgres import PostgresSource, partitions
from jupyter_di.errors import ConfigError
from jupyter_di.integration.di_config import validate_stream_settings
from jupyter_di.sync.spill import spill

pytestmark = pytest.mark.postgres

ROWS = 30_000


@pytest.fixture
def table(pg_connect):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE items AS SELECT i AS id, timestamptz '2024-01-01' + mod(i, 997) * interval '1 minute' AS updated_at, "
        f"md5(i::text) AS label, (i * 1.5)::numeric(12,2) AS price FROM generate_series(1, {ROWS}) i"
    )
    conn.execute("ALTER TABLE items ADD PRIMARY KEY (id)")
    conn.execute(f"CREATE TABLE heap AS SELECT i AS n, md5(i::text) AS label FROM generate_series(1, {ROWS}) i")  # no key
    conn.execute("ANALYZE items")
    return conn


def read(config, settings: StreamSettings, batch_size: int = 1000) -> tuple[pa.Table, dict]:
    request = ReadRequest(settings, batch_size=batch_size)
    with PostgresSource(config) as source:
        table = source.read(request).read_all()
    return table, request.stats


def by_key(stream: str, partitions: int | None = None) -> StreamSettings:
    """A first INCREMENTAL sync on the key: split by key ranges (FULL_TABLE reads split by blocks)."""
    return StreamSettings(
        stream, replication_method="INCREMENTAL", bookmark_properties=["id"], key_properties=["id"], partitions=partitions
    )


def test_key_ranges_read_every_row_once(pg_config, table):
    whole, stats = read(pg_config, by_key("items"))
    parted, stats = read(pg_config, by_key("items", 4))
    assert stats["partitions"] == 4 and stats["partition_method"] == "key id"
    assert parted.num_rows == ROWS
    assert sorted(parted.column("id").to_pylist()) == list(range(1, ROWS + 1))
    assert parted.sort_by("id").equals(whole.sort_by("id"))


def test_integer_key_without_statistics_splits_between_min_and_max(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TABLE fresh (id int8 PRIMARY KEY, v text)")  # never analyzed: no histogram
    conn.execute("INSERT INTO fresh SELECT i, i::text FROM generate_series(1, 5000) i")
    parted, stats = read(pg_config, by_key("fresh", 3))
    assert stats["partition_method"] == "key id" and stats["partitions"] == 3
    assert sorted(parted.column("id").to_pylist()) == list(range(1, 5001))


def test_a_table_without_a_key_is_split_by_blocks(pg_config, table):
    parted, stats = read(pg_config, StreamSettings("heap", partitions=3))
    assert stats["partition_method"] == "ctid" and stats["partitions"] == 3
    assert sorted(parted.column("n").to_pylist()) == list(range(1, ROWS + 1))


def test_a_full_table_read_of_a_keyed_table_is_split_by_blocks_in_smaller_batches(pg_config, table, monkeypatch):
    """FULL_TABLE has no order to keep: TID range scans instead of index scans on the key; each of the
    parts asks ADBC for a quarter of one query's batch bytes, so four parts hold what one query would."""
    from jupyter_di.connectors.postgres import read as pg_read

    hints = []
    real = pg_read._stream

    def recorded(session, query, target, batch_size, hint_bytes=pg_read._BATCH_HINT_BYTES):
        hints.append(hint_bytes)
        yield from real(session, query, target, batch_size, hint_bytes)

    monkeypatch.setattr(pg_read, "_stream", recorded)
    whole, _ = read(pg_config, StreamSettings("items"))
    parted, stats = read(pg_config, StreamSettings("items", partitions=4))
    assert stats["partitions"] == 4 and stats["partition_method"] == "ctid"
    assert parted.num_rows == ROWS
    assert parted.sort_by("id").equals(whole.sort_by("id"))
    assert hints == [pg_read._BATCH_HINT_BYTES] + [pg_read._BATCH_HINT_BYTES // 4] * 4


def test_all_parts_read_one_snapshot(pg_config, table, pg_connect, monkeypatch):
    """Rows changed after the read started are not seen by any part, even by parts whose first query
    runs after the change (held back here until it is committed)."""
    before, _ = read(pg_config, StreamSettings("items"))
    writer = pg_connect()
    gate = threading.Event()
    real = partitions.part_batches

    def held_back(session, plan, part, target, batch_size):
        if part.index > 0:
            assert gate.wait(30)
        yield from real(session, plan, part, target, batch_size)

    monkeypatch.setattr(partitions, "part_batches", held_back)
    request = ReadRequest(StreamSettings("items", partitions=4), batch_size=500)
    with PostgresSource(pg_config) as source:
        reader = source.read(request)
        first = reader.read_next_batch()  # the snapshot is taken and imported by every part
        writer.execute("DELETE FROM items WHERE mod(id, 7) = 0")
        writer.execute("UPDATE items SET label = 'changed' WHERE mod(id, 5) = 0")
        writer.execute(f"INSERT INTO items SELECT i, now(), 'new', 1 FROM generate_series({ROWS + 1}, {ROWS + 500}) i")
        gate.set()
        rest = reader.read_all()
    got = pa.Table.from_batches([first]).cast(rest.schema).combine_chunks()
    got = pa.concat_tables([got, rest])
    assert got.num_rows == ROWS
    assert got.sort_by("id").equals(before.sort_by("id"))


def test_incremental_first_sync_bookmarks_never_pass_an_undelivered_row(pg_config, table, tmp_path):
    settings = StreamSettings(
        "items", replication_method="INCREMENTAL", bookmark_properties=["updated_at"], key_properties=["id"], partitions=3
    )
    request = ReadRequest(settings, batch_size=700)
    with PostgresSource(pg_config) as source:
        result = spill(source.read(request), tmp_path / "items.arrow", settings)
    assert request.stats["partitions"] == 3
    spilled = pa.ipc.open_stream(pa.OSFile(str(tmp_path / "items.arrow"))).read_all().to_batches()
    assert len(spilled) == len(result.batch_states) > 10
    all_times = sorted(spilled_row for b in spilled for spilled_row in b.column("updated_at").to_pylist())
    seen: list[dt.datetime] = []
    bookmarks = []
    for batch, state in zip(spilled, result.batch_states):
        seen.extend(batch.column("updated_at").to_pylist())
        if state is None or state["bookmark"] is None:
            continue
        mark = dt.datetime.fromisoformat(state["bookmark"]["updated_at"])
        bookmarks.append(mark)
        # every row below the bookmark has been delivered by now (the next read starts at the bookmark)
        assert sum(1 for t in seen if t < mark) == sum(1 for t in all_times if t < mark)
    assert bookmarks == sorted(bookmarks)
    assert bookmarks[0] < bookmarks[-1]
    assert result.final_state["bookmark"]["updated_at"] == all_times[-1].isoformat()
    assert result.rows == ROWS


def test_incremental_with_a_bookmark_reads_one_query(pg_config, table):
    settings = StreamSettings(
        "items", replication_method="INCREMENTAL", bookmark_properties=["updated_at"], key_properties=["id"], partitions=4
    )
    request = ReadRequest(settings, bookmark={"updated_at": "2024-01-01T16:00:00+00:00"})
    with PostgresSource(pg_config) as source:
        got = source.read(request).read_all()
    assert "partitions" not in request.stats
    assert got.num_rows == sum(1 for i in range(1, ROWS + 1) if i % 997 >= 960)


def test_string_bookmarks_are_not_split(pg_config, table):
    settings = StreamSettings("items", replication_method="INCREMENTAL", bookmark_properties=["label"], key_properties=["id"], partitions=2)
    got, stats = read(pg_config, settings)
    assert "partitions" not in stats and stats["notes"]
    assert got.num_rows == ROWS


def test_auto_uses_one_part_for_a_small_table_and_more_for_a_large_one(pg_config, table, monkeypatch):
    _, stats = read(pg_config, StreamSettings("items", partitions="auto"))
    assert "partitions" not in stats  # 30,000 rows are far below 64 MB: one query
    monkeypatch.setattr(partitions, "AUTO_BYTES_PER_PART", 256 * 1024)
    got, stats = read(pg_config, StreamSettings("items", partitions="auto"))
    assert stats["partitions"] == partitions.auto_max_parts()
    assert got.num_rows == ROWS


def test_a_failing_part_fails_the_read_and_closes_every_connection(pg_config, table, pg_connect, monkeypatch):
    calls = {"n": 0}
    real = partitions.part_batches
    lock = threading.Lock()

    def failing(session, plan, part, target, batch_size):
        with lock:
            calls["n"] += 1
        if part.index == 1:
            raise RuntimeError("part 1 broke")
        yield from real(session, plan, part, target, batch_size)

    monkeypatch.setattr(partitions, "part_batches", failing)
    with pytest.raises(RuntimeError, match="part 1 broke"):
        read(pg_config, StreamSettings("items", partitions=3))
    assert calls["n"] == 3
    conn = pg_connect()
    left = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'jupyter-di'"
    ).fetchone()[0]
    assert left == 0


@pytest.mark.parametrize("value", [0, 65, -1, 2.5, "many", True])
def test_bad_partitions_values_are_one_clear_error(value):
    with pytest.raises(ConfigError, match="partitions must be a whole number"):
        validate_stream_settings({"partitions": value}, block="src", stream="items")


def test_partitions_setting_is_accepted():
    assert validate_stream_settings({"partitions": "AUTO"}, block="b", stream="s") == {"partitions": "auto"}
    assert validate_stream_settings({"partitions": 8}, block="b", stream="s") == {"partitions": 8}
