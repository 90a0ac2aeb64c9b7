"""PostgreSQL ``infinity``/``-infinity`` dates and timestamps through Arrow (postgres/infinity.py,
_shared/infinity.py), against a real server and real DuckDB files: they arrive as infinity where the
destination stores it (DuckDB, PostgreSQL: FULL_TABLE, INCREMENTAL with an infinite bookmark,
``partitions: 2``, LOG_BASED), and are refused by name where it cannot (files).  Before, ADBC wrapped
them around: ``date 'infinity'`` arrived as 5877612-06-21 BC."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from jupyter_di.connectors._shared.infinity import MAX
from jupyter_di.connectors.base import ReadRequest, StreamSettings
from jupyter_di.connectors.duckdb import DuckDBDestination
from jupyter_di.connectors.files import FilesDestination
from jupyter_di.connectors.postgres import PostgresDestination, PostgresSource
from jupyter_di.errors import ConfigError, SchemaMismatch
from jupyter_di.sync.engine import write_stream
from jupyter_di.sync.spill import open_reader, spill
from tests.connectors.postgres.test_log_based import Sync, Target, log_pg  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgres

TABLE = """
CREATE TABLE src (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz, da date[], tsa timestamp[], note text);
INSERT INTO src VALUES
 (1, 'infinity', 'infinity', 'infinity', '{infinity,2020-01-01,NULL}', '{-infinity,NULL,2020-01-01 00:00:01}', 'plus'),
 (2, '-infinity', '-infinity', '-infinity', '{-infinity}', '{-infinity}', 'minus'),
 (3, '2020-01-02', '2020-01-02 03:04:05.123456', '2020-01-02 03:04:05.123456+00', '{}', '{}', 'normal'),
 (4, NULL, NULL, NULL, NULL, NULL, 'nulls'),
 (5, '4713-01-01 BC', '4713-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC', '{5874897-12-31}', '{294246-12-31 23:59:59}', 'extremes');
INSERT INTO src (id, d, ts, tz, note) SELECT g, DATE '2001-01-01' + g, TIMESTAMP '2001-01-01' + g * INTERVAL '1 s',
  TIMESTAMPTZ '2001-01-01Z' + g * INTERVAL '1 s', 'row' FROM generate_series(6, 3000) AS g;
"""
TEXT_COLUMNS = ["d", "ts", "tz", "da", "tsa"]
EXPECTED = {  # as PostgreSQL prints them (DuckDB's text differs for arrays and BC: compared below)
    1: ("infinity", "infinity", "infinity"),
    2: ("-infinity", "-infinity", "-infinity"),
    3: ("2020-01-02", "2020-01-02 03:04:05.123456", "2020-01-02 03:04:05.123456+00"),
    4: (None, None, None),
}


def pg_text(conn, rel: str) -> list[tuple]:
    texts = ", ".join(f"{c}::text" for c in TEXT_COLUMNS)
    return conn.execute(f"SELECT id, {texts} FROM {rel} ORDER BY id").fetchall()


def duck_text(path) -> list[tuple]:
    with duckdb.connect(str(path)) as con:
        return con.sql("SELECT id, d::text, ts::text, tz::text, da::text, tsa::text FROM src ORDER BY id").fetchall()


@pytest.fixture
def source(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute(TABLE)
    return conn


def write(pg_config, dst, settings: StreamSettings, **read) -> None:
    with PostgresSource(pg_config) as src:
        write_stream(dst, settings, src.read(ReadRequest(settings, **read)))


def test_the_arrow_values_are_the_convention_and_the_rest_is_untouched(pg_config, source):
    with PostgresSource(pg_config) as src:
        table = src.read(ReadRequest(StreamSettings("src"))).read_all().sort_by("id")

    def ints(name: str) -> list:
        col = table.column(name).combine_chunks()
        return col.view(pa.int32() if pa.types.is_date32(col.type) else pa.int64()).to_pylist()[:5]

    assert ints("d") == [MAX[32], -MAX[32], 18263, None, -2440550]
    assert ints("ts")[:4] == ints("tz")[:4] == [MAX[64], -MAX[64], 1577934245123456, None]
    assert table.column("tsa").combine_chunks().flatten().view(pa.int64()).to_pylist()[:4] == [-MAX[64], None, 1577836801000000, -MAX[64]]
    assert table.column("da").combine_chunks().flatten().view(pa.int32()).to_pylist()[:4] == [MAX[32], 18262, None, -MAX[32]]


def test_into_duckdb_infinity_arrives_as_infinity(pg_config, source, tmp_path):
    path = tmp_path / "out.duckdb"
    with DuckDBDestination({"path": str(path)}) as dst:
        write(pg_config, dst, StreamSettings("src"))
    rows = duck_text(path)
    assert len(rows) == 3000
    for row in rows[:4]:
        assert row[1:4] == EXPECTED[row[0]]
    assert rows[0][4:] == ("[infinity, 2020-01-01, NULL]", "[-infinity, NULL, '2020-01-01 00:00:01']")
    assert rows[1][4:] == ("[-infinity]", "[-infinity]")
    assert rows[4][1:4] == ("4713-01-01 (BC)", "4713-01-01 (BC) 00:00:00", "4713-01-01 (BC) 00:00:00+00")
    assert rows[4][4:] == ("[5874897-12-31]", "['294246-12-31 23:59:59']")
    with duckdb.connect(str(path)) as con:  # the rest of the table as the source has it
        assert con.sql("SELECT count(*), max(d)::text, max(ts)::text FROM src WHERE id > 5").fetchall() == [
            (2995, "2009-03-20", "2001-01-01 00:50:00")
        ]


def test_into_postgresql_infinity_arrives_as_infinity(pg_config, source):
    with PostgresDestination(dict(pg_config, schema="out")) as dst:
        write(pg_config, dst, StreamSettings("src", columns=["id", "d", "ts", "tz", "da", "tsa"]))
    # not the COPY pass-through (sync_stream): this is the Arrow path
    assert pg_text(source, "out.src") == pg_text(source, "public.src")
    assert pg_text(source, "out.src")[0][1:] == (
        "infinity",
        "infinity",
        "infinity",
        "{infinity,2020-01-01,NULL}",
        '{-infinity,NULL,"2020-01-01 00:00:01"}',
    )


def test_a_list_of_timestamps_with_infinity_is_refused_by_postgresql_with_the_column(pg_config, source):
    source.execute("UPDATE src SET tsa = '{infinity}' WHERE id = 3")
    with PostgresDestination(dict(pg_config, schema="out")) as dst:
        with pytest.raises(SchemaMismatch, match="column 'tsa' is a list of timestamps holding infinity") as err:
            write(pg_config, dst, StreamSettings("src"))
    assert err.value.fix and "array_replace" in err.value.fix
    assert source.execute("SELECT to_regclass('out.src')").fetchone()[0] is None  # nothing committed


@pytest.mark.parametrize("into", ["duckdb", "postgresql"])
def test_partitions_two(pg_config, source, tmp_path, into):
    settings = StreamSettings("src", columns=["id", "d", "ts", "tz"], partitions=2)
    request = ReadRequest(settings)
    if into == "duckdb":
        path = tmp_path / "p.duckdb"
        with PostgresSource(pg_config) as src, DuckDBDestination({"path": str(path)}) as dst:
            write_stream(dst, settings, src.read(request))
        with duckdb.connect(str(path)) as con:
            rows = con.sql("SELECT id, d::text, ts::text, tz::text FROM src WHERE id <= 4 ORDER BY id").fetchall()
    else:
        with PostgresSource(pg_config) as src, PostgresDestination(dict(pg_config, schema="out")) as dst:
            write_stream(dst, settings, src.read(request))
        rows = source.execute("SELECT id, d::text, ts::text, tz::text FROM out.src WHERE id <= 4 ORDER BY id").fetchall()
    assert request.stats.get("partitions") == 2
    assert [row[1:] for row in rows] == [EXPECTED[i] for i in (1, 2, 3, 4)]


def incremental(pg_config, dst, bookmark_column: str, bookmark, tmp_path, **kw):
    """One INCREMENTAL run as the runner does it: the spill takes each batch's bookmark, the engine
    writes the batches with their states."""
    settings = StreamSettings(
        "src",
        columns=["id", bookmark_column],
        replication_method="INCREMENTAL",
        bookmark_properties=[bookmark_column],
        key_properties=["id"],
        unique_constraints=["id"],
        **kw,
    )
    request = ReadRequest(settings, bookmark=bookmark)
    with PostgresSource(pg_config) as src:
        spilled = spill(src.read(request), tmp_path / f"spill-{id(request)}.arrow", settings)
    write_stream(dst, settings, open_reader(spilled.path), batch_states=spilled.batch_states)
    return spilled, request


@pytest.mark.parametrize("column", ["d", "ts", "tz"])
@pytest.mark.parametrize("into", ["duckdb", "postgresql"])
def test_incremental_with_an_infinite_bookmark_keeps_working(pg_config, source, tmp_path, column, into):
    """The greatest bookmark value is infinity: it is saved as "infinity", bound back as a parameter,
    and the next runs read only rows at infinity (bookmarks are inclusive) and new ones."""

    def dst():
        if into == "duckdb":
            return DuckDBDestination({"path": str(tmp_path / "i.duckdb")})
        return PostgresDestination(dict(pg_config, schema="out"))

    with dst() as d:
        first, _ = incremental(pg_config, d, column, None, tmp_path)
    assert first.rows == 3000 and first.null_cursor_rows == 1  # row 4's NULL is read, not tracked
    assert first.final_state["bookmark"] == {column: "infinity"}
    with dst() as d:
        again, _ = incremental(pg_config, d, column, first.final_state["bookmark"], tmp_path)
    assert again.rows == 1 and again.final_state["bookmark"] == {column: "infinity"}
    # a bookmark of -infinity reads everything again; a finite one what is after it
    with PostgresSource(pg_config) as src:
        settings = StreamSettings("src", columns=["id", column], replication_method="INCREMENTAL", bookmark_properties=[column])
        assert src.read(ReadRequest(settings, bookmark={column: "-infinity"})).read_all().num_rows == 2999
        after = src.read(ReadRequest(settings, bookmark={column: "2020-01-02"})).read_all()
        assert sorted(after.column("id").to_pylist()) == [1, 3]
    source.execute(f"UPDATE src SET {column} = 'infinity' WHERE id = 3")
    with dst() as d:
        third, _ = incremental(pg_config, d, column, again.final_state["bookmark"], tmp_path)
    assert third.rows == 2
    if into == "duckdb":
        with duckdb.connect(str(tmp_path / "i.duckdb")) as con:
            got = con.sql(f"SELECT id, {column}::text FROM src WHERE id IN (1, 2, 3) ORDER BY id").fetchall()
    else:
        got = source.execute(f"SELECT id, {column}::text FROM out.src WHERE id IN (1, 2, 3) ORDER BY id").fetchall()
    assert got == [(1, "infinity"), (2, "-infinity"), (3, "infinity")]


def test_a_first_incremental_sync_in_two_partitions_orders_infinite_bookmarks(pg_config, source, tmp_path):
    with DuckDBDestination({"path": str(tmp_path / "ip.duckdb")}) as dst:
        spilled, request = incremental(pg_config, dst, "ts", None, tmp_path, partitions=2)
    assert request.stats.get("partitions") == 2
    assert spilled.rows == 3000 and spilled.final_state["bookmark"] == {"ts": "infinity"}
    with duckdb.connect(str(tmp_path / "ip.duckdb")) as con:
        assert con.sql("SELECT ts::text FROM src WHERE id IN (1, 2) ORDER BY id").fetchall() == [("infinity",), ("-infinity",)]


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_log_based_snapshot_and_changes_carry_infinity(log_pg, tmp_path, kind):
    """The snapshot is an ADBC read; the changes' text goes through the server's cast (text_values
    leaves 'infinity' to it) and back through the same ADBC read."""
    from tests.connectors.postgres.test_log_based import sql

    sql(
        log_pg,
        "CREATE TABLE items (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz)",
        "INSERT INTO items VALUES (1, 'infinity', 'infinity', 'infinity'), (2, '-infinity', '-infinity', '-infinity'), (3, NULL, NULL, NULL)",
    )
    target = Target(kind, log_pg, tmp_path)
    run = Sync(log_pg, target, tmp_path, key_properties=["id"])
    run.run()
    columns = "id, d::text, ts::text, tz::text"
    assert target.rows(columns) == [(1, *EXPECTED[1]), (2, *EXPECTED[2]), (3, None, None, None)]
    sql(
        log_pg,
        "UPDATE items SET d = '-infinity', ts = 'infinity', tz = '-infinity' WHERE id = 3",
        "INSERT INTO items VALUES (4, 'infinity', '-infinity', 'infinity')",
    )
    run.run()
    assert target.rows(columns)[2:] == [(3, "-infinity", "infinity", "-infinity"), (4, "infinity", "-infinity", "infinity")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_file_destination_refuses_infinity_by_column(pg_config, source, tmp_path, fmt):
    with FilesDestination({"path": str(tmp_path / "files"), "format": fmt}) as dst:
        with pytest.raises(SchemaMismatch) as err:
            write(pg_config, dst, StreamSettings("src", columns=["id", "d", "ts", "note"]))
    assert "columns 'd', 'ts' hold infinity or -infinity" in str(err.value)
    assert "destination 'files' cannot store" in str(err.value)
    assert err.value.stream == "src" and "isfinite" in (err.value.fix or "")
    assert not (tmp_path / "files" / f"src.{fmt}").exists()
    # without infinities (the finite rows, or a view that replaces them) the stream is written
    # a view that replaces them is written (id 5 is BC, which no Python date holds for JSONL)
    source.execute("CREATE VIEW finite AS SELECT id, CASE WHEN isfinite(d) THEN d END AS d, note FROM src WHERE id <> 5")
    with FilesDestination({"path": str(tmp_path / "files"), "format": fmt}) as dst:
        assert write_stream_rows(pg_config, dst, StreamSettings("finite")) == 2999


def write_stream_rows(pg_config, dst, settings) -> int:
    with PostgresSource(pg_config) as src:
        return write_stream(dst, settings, src.read(ReadRequest(settings))).rows


def test_a_timestamp_beyond_arrow_stops_the_read_naming_the_column(pg_config, source):
    source.execute("INSERT INTO src (id, ts) VALUES (9001, '294250-01-01 00:00:00')")
    with PostgresSource(pg_config) as src:
        with pytest.raises(ConfigError, match="column 'ts' holds a timestamp after 294247-01-10"):
            src.read(ReadRequest(StreamSettings("src", columns=["id", "ts"]))).read_all()


def test_infinity_from_duckdb_reaches_postgresql_and_is_refused_by_csv(pg_config, pg_connect, tmp_path):
    """The convention is DuckDB's own: its infinities (which used to fail the PostgreSQL write with
    "timestamp out of range") arrive as infinity, and a CSV destination refuses them by column."""
    from jupyter_di.connectors.duckdb import DuckDBSource

    path = tmp_path / "src.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE events AS SELECT * FROM (VALUES (1, DATE 'infinity', TIMESTAMP '-infinity', TIMESTAMPTZ 'infinity'), "
            "(2, DATE '2024-02-29', TIMESTAMP '2024-02-29 12:00:00', NULL)) AS t(id, d, ts, tz)"
        )
    settings = StreamSettings("events")
    with DuckDBSource({"path": str(path)}) as src, PostgresDestination(dict(pg_config, schema="out")) as dst:
        write_stream(dst, settings, src.read(ReadRequest(settings)))
    rows = pg_connect().execute("SELECT id, d::text, ts::text, tz::text FROM out.events ORDER BY id").fetchall()
    assert rows == [(1, "infinity", "-infinity", "infinity"), (2, "2024-02-29", "2024-02-29 12:00:00", None)]
    with DuckDBSource({"path": str(path)}) as src, FilesDestination({"path": str(tmp_path / "csv")}) as dst:
        with pytest.raises(SchemaMismatch, match="columns 'd', 'ts', 'tz' hold infinity"):
            write_stream(dst, settings, src.read(ReadRequest(settings)))


def test_a_bookmark_override_of_infinity_is_accepted():
    from jupyter_di.sync.bookmarks import validate_bookmark

    entry = {
        "schema": {"properties": {"ts": {"type": ["string", "null"], "format": "date-time"}, "d": {"type": "string", "format": "date"}}}
    }
    assert validate_bookmark(entry, {"ts": "-infinity", "d": "infinity"}, block="b", stream="s") == {"ts": "-infinity", "d": "infinity"}
    with pytest.raises(ConfigError, match="wrong type"):
        validate_bookmark(entry, {"ts": "forever"}, block="b", stream="s")


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_timestamp_infinity_of_another_unit_stays_infinity_in_postgresql(pg_config, pg_connect, unit):
    import numpy as np

    values = np.array([2**63 - 1, -(2**63 - 1), 1_700_000_000, 0], dtype=np.int64)
    if unit != "s":
        values[2:] *= {"ms": 1_000, "ns": 1_000_000_000}[unit]
    column = pa.Array.from_buffers(pa.timestamp(unit), 4, [None, pa.py_buffer(values)])
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2, 3, 4], pa.int32()), column], names=["id", "ts"])
    settings = StreamSettings("units")
    with PostgresDestination(dict(pg_config, schema="out")) as dst:
        write_stream(dst, settings, pa.RecordBatchReader.from_batches(batch.schema, [batch]))
    rows = pg_connect().execute("SELECT ts::text FROM out.units ORDER BY id").fetchall()
    assert rows == [("infinity",), ("-infinity",), ("2023-11-14 22:13:20",), ("1970-01-01 00:00:00",)]


def test_a_notebook_run_into_csv_names_block_stream_and_column(pg_config, source, tmp_path, capsys, monkeypatch):
    """Through `jupyter-di run`: one message with the destination block, the stream, the column and the
    fix; exit code not 0; no file written; a DuckDB block beside it still gets the infinities."""
    from tests.support.notebooks import pg_source, run_notebook, write_notebook

    monkeypatch.chdir(tmp_path)
    nb = write_notebook(
        tmp_path / "inf.ipynb",
        [
            pg_source(pg_config, "  src:\n    columns: [id, d, note]\n"),
            "%%di_destination files_out --upstream src\ndestination: files\nconfig:\n  path: out\n  format: csv\n",
            "%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n",
        ],
    )
    result = run_notebook(nb, "--state-path", str(tmp_path / "state.sqlite"), capsys=capsys)
    assert result.code != 0
    text = result.out + result.err
    assert "files_out" in text and "src" in text
    assert "column 'd' holds infinity or -infinity" in text and "isfinite" in text
    assert not (tmp_path / "out" / "src.csv").exists()
    assert duck_text_of(tmp_path / "out.duckdb", "SELECT d::text FROM src WHERE id <= 2 ORDER BY id") == [("infinity",), ("-infinity",)]


def duck_text_of(path, query: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(query).fetchall()
