"""PostgreSQL -> PostgreSQL FULL_TABLE as the source server's binary COPY data, passed through as it
is (``sync.engine.sync_stream``, postgres/copy_read.py, copy_write.py), against a real server: the
same table (types and contents, NULLs included) as the Arrow path, the cases that must go through
Arrow instead, and failures mid-stream that must leave the destination as it was."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from jupyter_di.connectors.base import BinaryCopy, ReadRequest, StreamSettings
from jupyter_di.connectors.postgres import PostgresDestination, PostgresSource
from jupyter_di.errors import BlockFailed, SchemaMismatch
from jupyter_di.sync.engine import sync_stream, write_stream
from tests.support.write_paths import record_write_paths

pytestmark = pytest.mark.postgres

# every type whose binary form passes (PgColumn.copy_safe) and whose column the Arrow path creates alike
SAME_TYPES_DDL = """
CREATE TABLE src (
    id bigint PRIMARY KEY, small smallint, i integer, d double precision, n numeric(12,2), flag boolean,
    t text, day date, at time, ts timestamp, tz timestamptz, raw bytea, jb jsonb, nums integer[], words text[]
);
INSERT INTO src VALUES
 (1, -32768, -2147483648, -1.5e300, -9999999999.99, true, 'é 中文 🙂 ''q'' "d" back\\slash', '0001-01-01', '00:00:00',
  '1900-01-01 00:00:00', '2024-02-29 23:59:59.999999+00', '\\x00ff10', '{"a": [1, {"b": null}], "é": "🙂"}',
  '{1, NULL, -3}', '{"x", "y z", NULL, ""}'),
 (2, 32767, 2147483647, 'NaN', 0.01, false, '', '9999-12-31', '23:59:59.999999', '2262-04-11 23:47:16', '1677-09-21 00:12:44+00', '', '[]',
  '{}', '{}'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO src (id, t, n) SELECT g, 'row ' || g, g / 100.0 FROM generate_series(4, 20000) AS g;
"""
COLUMNS = "id, small, i, d, n, flag, t, day, at, ts, tz, raw, jb, nums, words"


@pytest.fixture
def paths(monkeypatch):
    """Which path each write took: 'copy' (the bytes passed through) or 'arrow'."""
    return record_write_paths(monkeypatch)


def sync(pg_config, settings, schema="copy", **kw):
    with PostgresSource(pg_config) as src, PostgresDestination(dict(pg_config, schema=schema)) as dst:
        return sync_stream(src, dst, settings, **kw)


def table_types(conn, rel):
    return conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (rel,),
    ).fetchall()


def as_text(conn, rel, columns=COLUMNS):
    texts = ", ".join(f"r.{c}::text" for c in columns.split(", "))
    return conn.execute(f"SELECT {texts} FROM {rel} AS r ORDER BY r.id").fetchall()


def test_the_bytes_pass_through_into_the_table_the_arrow_path_makes(pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(SAME_TYPES_DDL)
    result = sync(pg_config, StreamSettings("src"), state_key="p|src|src")
    assert paths == ["copy"] and result.rows == 20000
    with PostgresSource(pg_config) as src, PostgresDestination(dict(pg_config, schema="arrow")) as dst:
        write_stream(dst, StreamSettings("src"), src.read(ReadRequest(StreamSettings("src"))))
    assert paths == ["copy", "arrow"]
    # the same column types as the Arrow path creates, and as the source has
    assert table_types(conn, "copy.src") == table_types(conn, "arrow.src") == table_types(conn, "public.src")
    # the same values, as PostgreSQL prints them, NULLs, NaN and infinities included
    copied = as_text(conn, "copy.src")
    assert copied == as_text(conn, "arrow.src") == as_text(conn, "public.src")
    assert copied[2] == ("3",) + (None,) * 14
    assert copied[1][3] == "NaN"
    # again: the table is replaced, not appended to; values the Arrow path cannot carry pass as they are
    conn.execute("DELETE FROM src WHERE id > 10; UPDATE src SET ts = 'infinity', tz = '-infinity', n = 'NaN' WHERE id = 2")
    assert sync(pg_config, StreamSettings("src")).rows == 10
    assert paths[-1] == "copy" and as_text(conn, "copy.src") == as_text(conn, "public.src")


def test_an_existing_table_with_the_same_types_takes_the_bytes_with_its_own_extra_columns(pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE src (id int PRIMARY KEY, u uuid, iv interval, code varchar(5), c char(3), r real, ip inet, tt timetz);"
        "INSERT INTO src VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 year 2 mons 3 days 04:05:06.7', 'ab', 'x', 1.5, "
        "'10.1.2.3/8', '12:00:00+05:30'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
        "CREATE SCHEMA copy; CREATE TABLE copy.src (extra text DEFAULT 'kept', id int, u uuid, iv interval, code varchar(5), "
        "c char(3), r real, ip inet, tt timetz); INSERT INTO copy.src (id) VALUES (99)"
    )
    assert sync(pg_config, StreamSettings("src")).rows == 2
    assert paths == ["copy"]
    columns = "id, u, iv, code, c, r, ip, tt"
    assert as_text(conn, "copy.src", columns) == as_text(conn, "public.src", columns)
    assert conn.execute("SELECT extra FROM copy.src ORDER BY id").fetchall() == [("kept",), ("kept",)]
    # without the table the Arrow path writes it (uuid, interval, real read as text and float8)
    conn.execute("DROP TABLE copy.src")
    assert sync(pg_config, StreamSettings("src")).rows == 2
    assert paths == ["copy", "arrow"]
    assert dict(table_types(conn, "copy.src"))["u"] == "text"


def test_other_types_selections_and_settings_go_through_arrow(pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(
        "CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE TABLE src (id int PRIMARY KEY, m mood, j json, t text);"
        "INSERT INTO src VALUES (1, 'ok', '{\"a\": \"\\u0000\"}', 'one'), (2, NULL, NULL, NULL)"
    )
    with PostgresSource(pg_config) as src:
        assert src.binary_copy(ReadRequest(StreamSettings("src"))) is None  # an enum and json: not passed through
        offer = src.binary_copy(ReadRequest(StreamSettings("src", columns=["id", "t"])))
        assert offer is not None and [c.name for c in offer.columns] == ["id", "t"]
        offer.close()
        assert src.binary_copy(ReadRequest(StreamSettings("src", columns=["id", "t"]), limit=1)) is None
        parted = src.binary_copy(ReadRequest(StreamSettings("src", columns=["id", "t"], partitions=2)))
        assert parted is not None  # offered: DuckDB's scanner reads in parts itself; PostgreSQL declines it (below)
        parted.close()
        incremental = StreamSettings("src", columns=["id", "t"], replication_method="INCREMENTAL", bookmark_properties=["id"])
        assert src.binary_copy(ReadRequest(incremental)) is None
    with pytest.warns(UserWarning, match="removed NUL characters"):  # json's \u0000 escape, which the Arrow path removes
        assert sync(pg_config, StreamSettings("src")).rows == 2
    assert sync(pg_config, StreamSettings("src", columns=["id", "t"], destination_table="part")).rows == 2
    assert paths == ["arrow", "copy"]
    assert conn.execute("SELECT id, t FROM copy.part ORDER BY id").fetchall() == [(1, "one"), (2, None)]
    # a destination column of another type: the Arrow path casts into it
    conn.execute("CREATE TABLE copy.typed (id bigint, t varchar(10))")
    assert sync(pg_config, StreamSettings("src", columns=["id", "t"], destination_table="typed")).rows == 2
    # unique constraints on FULL_TABLE: the Arrow path (one row per key)
    assert sync(pg_config, StreamSettings("src", columns=["id", "t"], destination_table="keyed", unique_constraints=["id"])).rows == 2
    # a read in parts, as the stream asks: the Arrow path
    assert sync(pg_config, StreamSettings("src", columns=["id", "t"], destination_table="parts", partitions=2)).rows == 2
    assert paths == ["arrow", "copy", "arrow", "arrow", "arrow"]
    assert conn.execute("SELECT id, t FROM copy.parts ORDER BY id").fetchall() == [(1, "one"), (2, None)]
    # INCREMENTAL takes its bookmarks from the spill: not this function's
    with pytest.raises(ValueError, match="FULL_TABLE"):
        sync(pg_config, incremental)


def test_a_source_failing_mid_stream_leaves_the_old_rows(pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE base (id int, t text); INSERT INTO base SELECT g, repeat('x', 50) FROM generate_series(1, 200000) AS g;"
        "CREATE VIEW src AS SELECT id, CASE WHEN id = 150000 THEN (1 / (id - id))::text ELSE t END AS t FROM base;"
        "CREATE SCHEMA copy; CREATE TABLE copy.src (id int, t text); INSERT INTO copy.src VALUES (7, 'old')"
    )
    pieces = []
    with PostgresSource(pg_config) as src, PostgresDestination(dict(pg_config, schema="copy")) as dst:
        offer = src.binary_copy(ReadRequest(StreamSettings("src")))
        assert offer is not None
        counted = _Counted(offer, pieces)
        with pytest.raises(psycopg.errors.DivisionByZero):
            dst.write_binary_copy(_request(offer), counted)
    assert len(pieces) >= 2  # rows had reached the destination's COPY before the source failed
    assert conn.execute("SELECT id, t FROM copy.src").fetchall() == [(7, "old")]
    assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%'").fetchone() == (0,)


def test_a_destination_failing_mid_stream_leaves_the_old_rows_and_says_why(pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE src (id int, t text); INSERT INTO src SELECT g, repeat('x', 50) FROM generate_series(1, 100000) AS g;"
        "CREATE SCHEMA copy; CREATE TABLE copy.src (id int CHECK (id < 90000), t text); INSERT INTO copy.src VALUES (7, 'old')"
    )
    with pytest.raises(SchemaMismatch, match=r"could not write into table copy\.src: .*check constraint"):
        sync(pg_config, StreamSettings("src"), state_key="p|b|src")
    assert paths == []
    assert conn.execute("SELECT id, t FROM copy.src").fetchall() == [(7, "old")]
    assert conn.execute("SELECT count(*) FROM copy._jupyter_di_state").fetchone() == (0,)


def test_a_row_count_that_differs_from_the_sources_commits_nothing(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TABLE src (id int, t text); INSERT INTO src SELECT g, 't' FROM generate_series(1, 1000) AS g")
    with PostgresSource(pg_config) as src, PostgresDestination(dict(pg_config, schema="copy")) as dst:
        offer = src.binary_copy(ReadRequest(StreamSettings("src")))
        assert offer is not None
        with pytest.raises(BlockFailed, match="the source sent 1001 rows but table copy.src took 1000"):
            dst.write_binary_copy(_request(offer), _Counted(offer, [], lie=1))
    assert conn.execute("SELECT to_regclass('copy.src')").fetchone() == (None,)  # created in the rolled-back transaction


def _request(offer: BinaryCopy):
    from jupyter_di.connectors.base import WriteRequest

    return WriteRequest(StreamSettings("src"), offer.schema)


class _Counted(BinaryCopy):
    """A source's offer that records each piece it hands on (and may misreport its row count)."""

    def __init__(self, inner: BinaryCopy, pieces: list, lie: int = 0) -> None:
        self.inner, self.pieces, self.lie = inner, pieces, lie
        self.columns, self.schema = inner.columns, inner.schema

    @property
    def rows(self):  # type: ignore[override]
        return None if self.inner.rows is None else self.inner.rows + self.lie

    def chunks(self) -> Iterator[bytes]:
        for piece in self.inner.chunks():
            self.pieces.append(len(piece))
            yield piece

    def close(self) -> None:
        self.inner.close()


def test_a_destination_that_takes_no_copy_data_gets_arrow_and_the_offer_is_closed(pg_config, pg_connect, tmp_path, monkeypatch):
    import duckdb

    from jupyter_di.connectors.postgres import copy_read
    from jupyter_di.connectors.registry import destination_class

    conn = pg_connect()
    conn.execute("CREATE TABLE src (id int, t text); INSERT INTO src VALUES (1, 'a'), (2, NULL)")
    closed = []
    monkeypatch.setattr(copy_read.PgBinaryCopy, "close", lambda self: closed.append(self._conn.close()))
    with PostgresSource(pg_config) as src, destination_class("duckdb")({"path": str(tmp_path / "d.duckdb")}) as dst:
        assert sync_stream(src, dst, StreamSettings("src")).rows == 2
    assert closed
    with duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True) as d:
        assert d.execute("SELECT id, t FROM src ORDER BY id").fetchall() == [(1, "a"), (2, None)]
