"""PostgreSQL -> DuckDB FULL_TABLE read by DuckDB's own postgres extension (connectors/duckdb/postgres_scan.py)
against a real server: the same table (types and values) as the Arrow path, the streams that must go
through Arrow instead, the password kept out of every string, failures that keep the old rows, and a
notebook run that passes the stream through and reports its rows."""

from __future__ import annotations

import glob
import json
import os
import tempfile

import duckdb
import pytest

from jupyter_di.connectors.base import StreamSettings
from jupyter_di.connectors.duckdb import DuckDBDestination, postgres_scan
from jupyter_di.connectors.postgres import PostgresSource
from jupyter_di.errors import BlockFailed, ConnectionFailed
from jupyter_di.sync.engine import sync_stream
from tests.pipeline.test_dask_executor import cluster, dask_args  # noqa: F401 - the module's LocalCluster fixture
from tests.support import postgres as pg_support
from tests.support.notebooks import cli_process, pg_source, run_notebook, write_notebook
from tests.support.write_paths import record_write_paths

pytestmark = pytest.mark.postgres

# every type the scanner reads to the Arrow path's values (postgres_scan.scanned_as_read)
SCANNED_DDL = """
CREATE TABLE src (
    id bigint PRIMARY KEY, small smallint, i integer, d double precision, n numeric(12,2), wide numeric(38,10), flag boolean,
    t text, v varchar(10), nm name, day date, at time, ts timestamp, tz timestamptz, raw bytea, jb jsonb,
    nums integer[], words text[], floats float8[]
);
INSERT INTO src VALUES
 (1, -32768, -2147483648, -1.5e300, -9999999999.99, 1234567890.0123456789, true, 'é 中文 🙂 ''q'' "d" back\\slash', 'abc', 'nm',
  '0001-01-01', '00:00:00', '1900-01-01 00:00:00', '2024-02-29 23:59:59.999999+00', '\\x00ff10', '{"a": [1, {"b": null}], "é": "🙂"}',
  '{1, NULL, -3}', '{"x", "y z", NULL, ""}', '{1.5, NaN, -Infinity}'),
 (2, 32767, 2147483647, 'NaN', 0.01, 0, false, '', '', '', '9999-12-31', '23:59:59.999999', '2262-04-11 23:47:16',
  '1677-09-21 00:12:44+00', '', '[]', '{}', '{}', '{}'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO src (id, t, n, jb) SELECT g, 'row ' || g, g / 100.0, jsonb_build_object('g', g) FROM generate_series(4, 30000) AS g;
"""


@pytest.fixture(autouse=True)
def scanner():
    """The extension for this DuckDB (the postgres-scanner extra, which pins DuckDB to the wheel's version);
    ``.ci/run`` runs these in a virtualenv with it and requires them to run (``JDI_TEST_SCANNER``)."""
    if postgres_scan.extension_file() is None:
        message = f"no postgres extension for DuckDB {duckdb.__version__}: pip install -e '.[postgres-scanner]'"
        if os.environ.get("JDI_TEST_SCANNER"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def paths(monkeypatch):
    """Which path each DuckDB write took: 'copy' (the scanner) or 'arrow'."""
    return record_write_paths(monkeypatch, DuckDBDestination)


def sync(pg_config, path, settings, state_key=None, **config):
    with PostgresSource(pg_config) as src, DuckDBDestination({"path": str(path), **config}) as dst:
        return sync_stream(src, dst, settings, state_key=state_key)


def rows_of(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def types_of(path, table="src"):
    return rows_of(
        path, f"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position"
    )


def test_the_scanner_loads_the_table_the_arrow_path_makes(tmp_path, pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(SCANNED_DDL)
    scanned, arrow = tmp_path / "scanned.duckdb", tmp_path / "arrow.duckdb"
    assert sync(pg_config, scanned, StreamSettings("src"), state_key="p|src|src").rows == 30000
    assert sync(pg_config, arrow, StreamSettings("src"), state_key="p|src|src", postgres_scanner=False).rows == 30000
    assert paths == ["copy", "arrow"]
    assert types_of(scanned) == types_of(arrow)
    assert dict(types_of(scanned))["jb"] == "JSON" and dict(types_of(scanned))["wide"] == "DECIMAL(38,10)"
    # the same values, NULLs, NaN and the extremes included
    con = duckdb.connect()
    con.execute(f"ATTACH '{scanned}' AS s (READ_ONLY); ATTACH '{arrow}' AS a (READ_ONLY)")
    assert con.execute("SELECT count(*) FROM (SELECT * FROM s.src EXCEPT ALL SELECT * FROM a.src)").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM (SELECT * FROM a.src EXCEPT ALL SELECT * FROM s.src)").fetchone() == (0,)
    first = con.execute("SELECT t, jb::VARCHAR, words, n, wide FROM s.src WHERE id = 1").fetchone()
    assert first[0] == "é 中文 🙂 'q' \"d\" back\\slash" and first[2] == ["x", "y z", None, ""]
    assert json.loads(first[1]) == {"a": [1, {"b": None}], "é": "🙂"} and str(first[3]) == "-9999999999.99"
    assert str(first[4]) == "1234567890.0123456789"
    assert con.execute("SELECT * EXCLUDE (id) FROM s.src WHERE id = 3").fetchone() == (None,) * 18
    con.close()
    # the state table as the Arrow path leaves it (a FULL_TABLE read has no bookmark)
    state = "SELECT state_key, state FROM _jupyter_di_state"
    assert rows_of(scanned, state) == rows_of(arrow, state)
    # again: the table is replaced, not appended to
    conn.execute("DELETE FROM src WHERE id > 10")
    assert sync(pg_config, scanned, StreamSettings("src")).rows == 10
    assert paths[-1] == "copy" and rows_of(scanned, "SELECT count(*), max(id) FROM src") == [(10, 10)]


def test_infinite_dates_and_timestamps_stay_infinite(tmp_path, pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE src (id int, day date, ts timestamp, tz timestamptz);"
        "INSERT INTO src VALUES (1, 'infinity', '-infinity', 'infinity'), (2, '-infinity', 'infinity', '-infinity')"
    )
    assert sync(pg_config, tmp_path / "d.duckdb", StreamSettings("src")).rows == 2
    assert paths == ["copy"]
    got = rows_of(tmp_path / "d.duckdb", "SELECT day::VARCHAR, ts::VARCHAR, tz::VARCHAR FROM src ORDER BY id")
    assert got == [("infinity", "-infinity", "infinity"), ("-infinity", "infinity", "-infinity")]


def test_every_row_is_read_whatever_the_statistics_say(tmp_path, pg_config, pg_connect, paths):
    """The scanner splits a table by the block count in the statistics: none yet (0), far too low (the
    table grew since ANALYZE), or none at all (a partitioned table, -1); rows past the count are read."""
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE fresh (id bigint, t text); INSERT INTO fresh SELECT g, md5(g::text) FROM generate_series(1, 200000) AS g;"
        "CREATE TABLE grown (id bigint, t text); INSERT INTO grown VALUES (0, 'x'); ANALYZE grown;"
        "INSERT INTO grown SELECT g, md5(g::text) FROM generate_series(1, 200000) AS g;"
        "CREATE TABLE parted (id bigint, t text) PARTITION BY RANGE (id);"
        "CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (100000);"
        "CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (100000) TO (300000);"
        "INSERT INTO parted SELECT g, md5(g::text) FROM generate_series(1, 200000) AS g; ANALYZE parted;"
    )
    pages = dict(conn.execute("SELECT relname, relpages FROM pg_class WHERE relname IN ('fresh', 'grown', 'parted')").fetchall())
    assert pages["fresh"] == 0 and pages["grown"] == 1 and pages["parted"] < 0
    for table, first in (("fresh", 1), ("grown", 0), ("parted", 1)):
        path = tmp_path / f"{table}.duckdb"
        assert sync(pg_config, path, StreamSettings(table, partitions="auto")).rows == 200000 + (1 - first)
        expected = conn.execute(f"SELECT count(*), count(DISTINCT id), sum(id), min(id), max(id) FROM {table}").fetchone()
        assert rows_of(path, f"SELECT count(*), count(DISTINCT id), sum(id), min(id), max(id) FROM {table}") == [expected]
    assert paths == ["copy", "copy", "copy"]


def test_a_sql_ascii_database_is_not_scanned_so_bytes_that_are_not_utf8_stop_the_read(tmp_path, pg_server, paths):
    """SQL_ASCII checks nothing: the scanner would copy such bytes into DuckDB unchecked, so the source
    offers no table to scan, and the Arrow path stops at the first such value, naming the column."""
    import psycopg

    from tests.connectors.postgres.test_log_based_encodings import encoded_database

    with encoded_database(pg_server, "SQL_ASCII") as cfg:
        dsn = f"host={cfg['host']} port={cfg['port']} user={cfg['username']} dbname={cfg['database']}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int, v text); INSERT INTO items VALUES (1, 'ok')")
            conn.execute("INSERT INTO items VALUES (2, convert_from('\\xe9'::bytea, 'SQL_ASCII'))")
        path = tmp_path / "d.duckdb"
        with pytest.raises(Exception, match="'v'") as err:
            sync(cfg, path, StreamSettings("items"))
        assert "UTF-8" in str(err.value)
        assert paths == ["arrow"]
        assert rows_of(path, "SELECT count(*) FROM items") == [(0,)]  # created as the Arrow path does, nothing committed


def test_columns_the_scanner_reads_otherwise_and_other_settings_go_through_arrow(tmp_path, pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE src (id int PRIMARY KEY, c char(5), u uuid, iv interval, r real, free numeric, t text);"
        "INSERT INTO src VALUES (1, 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 year 2 mons', 1.5, 3.14159265358979323846, 'one'),"
        " (2, NULL, NULL, NULL, NULL, 'NaN', NULL)"
    )
    path = tmp_path / "d.duckdb"
    # char(n) keeps its padding, uuid and interval their text, real becomes DOUBLE, free numeric exact text
    assert sync(pg_config, path, StreamSettings("src")).rows == 2
    assert paths == ["arrow"]
    assert rows_of(path, "SELECT c, u, iv, r, free FROM src ORDER BY id") == [
        ("ab   ", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "1 year 2 mons", 1.5, "3.14159265358979323846"),
        (None, None, None, None, "NaN"),
    ]
    # the columns it reads alike: scanned (in parts as well: the scanner splits the table itself)
    assert sync(pg_config, path, StreamSettings("src", columns=["id", "t"])).rows == 2
    assert sync(pg_config, tmp_path / "p.duckdb", StreamSettings("src", columns=["id", "t"], partitions=3)).rows == 2
    assert paths == ["arrow", "copy", "copy"]
    assert rows_of(tmp_path / "p.duckdb", "SELECT * FROM src ORDER BY id") == [(1, "one"), (2, None)]
    # keys (the Arrow path keeps one row per key), a table of other types, switched off: Arrow; an override
    # the table takes alike (DuckDB spells VARCHAR(10) VARCHAR): scanned
    assert sync(pg_config, path, StreamSettings("src", columns=["id", "t"], unique_constraints=["id"])).rows == 2
    assert sync(pg_config, tmp_path / "o.duckdb", StreamSettings("src", columns=["id", "t"], column_types={"t": "VARCHAR(10)"})).rows == 2
    with duckdb.connect(str(tmp_path / "b.duckdb")) as con:
        con.execute("CREATE TABLE src (id BIGINT, t VARCHAR)")
    assert sync(pg_config, tmp_path / "b.duckdb", StreamSettings("src", columns=["id", "t"])).rows == 2
    assert sync(pg_config, path, StreamSettings("src", columns=["id", "t"]), postgres_scanner=False).rows == 2
    assert paths == ["arrow", "copy", "copy", "arrow", "copy", "arrow", "arrow"]
    assert rows_of(tmp_path / "b.duckdb", "SELECT * FROM src ORDER BY id") == [(1, "one"), (2, None)]
    assert types_of(tmp_path / "o.duckdb") == [("id", "INTEGER"), ("t", "VARCHAR")]  # DuckDB spells VARCHAR(10) VARCHAR


def test_the_password_goes_through_a_password_file_and_nowhere_else(tmp_path, password_server, paths, monkeypatch):
    import psycopg

    config = dict(password_server, password=pg_support.PASSWORD)
    with psycopg.connect(
        host=config["host"], port=config["port"], user="postgres", password=config["password"], dbname="postgres", autocommit=True
    ) as conn:
        conn.execute("DROP TABLE IF EXISTS src; CREATE TABLE src AS SELECT g AS id, 'r' || g AS t FROM generate_series(1, 5000) AS g")
    seen: list[str] = []
    execute = duckdb.DuckDBPyConnection.execute

    def spy(self, query, parameters=None):  # noqa: ANN001, ANN202 - every statement and parameter DuckDB gets
        seen.append(f"{query} {parameters}")
        return execute(self, query, parameters)

    monkeypatch.setattr(duckdb.DuckDBPyConnection, "execute", spy)
    path = tmp_path / "d.duckdb"
    assert sync(config, path, StreamSettings("src")).rows == 5000
    assert paths == ["copy"]
    assert rows_of(path, "SELECT count(*), sum(id) FROM src") == [(5000, 12502500)]
    assert any("postgres_scan" in s for s in seen) and not any(pg_support.PASSWORD in s for s in seen)
    assert any("passfile=" in s for s in seen)
    assert not glob.glob(os.path.join(tempfile.gettempdir(), "jupyter-di-*.pgpass"))  # removed after the statement
    # a wrong password fails the connection (before the scanner), without the password in the message
    with pytest.raises(ConnectionFailed) as err:
        sync(dict(config, password="wrong-" + pg_support.PASSWORD), path, StreamSettings("src"))
    assert "password authentication failed" in str(err.value) and pg_support.PASSWORD not in str(err.value)
    assert rows_of(path, "SELECT count(*) FROM src") == [(5000,)]


def test_a_source_failing_mid_scan_keeps_the_old_rows_and_says_why(tmp_path, pg_config, pg_connect, paths):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE base (id int, t text); INSERT INTO base SELECT g, 'x' FROM generate_series(1, 100000) AS g;"
        "CREATE VIEW broken AS SELECT id, CASE WHEN id = 90000 THEN (1 / (id - id))::text ELSE t END AS t FROM base;"
    )
    path = tmp_path / "d.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE broken (id INTEGER, t VARCHAR); INSERT INTO broken VALUES (7, 'old')")
    with pytest.raises(BlockFailed) as err:
        sync(pg_config, path, StreamSettings("broken"), state_key="p|src|broken")
    assert str(err.value).startswith("stream 'broken': DuckDB's postgres scanner could not read public.broken: ")
    assert "division by zero" in str(err.value) and "nothing of this stream was committed" in str(err.value)
    assert paths == []
    assert rows_of(path, "SELECT * FROM broken") == [(7, "old")]
    assert rows_of(path, "SELECT count(*) FROM _jupyter_di_state") == [(0,)]


def test_a_notebook_run_passes_the_stream_to_duckdb_and_reports_its_rows(tmp_path, pg_config, pg_connect, paths, capsys):
    conn = pg_connect()
    conn.execute(SCANNED_DDL)
    conn.execute("CREATE TABLE people (id int, name text); INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 500) AS g")
    conn.execute("CREATE TABLE base (id int, t text); INSERT INTO base SELECT g, 'x' FROM generate_series(1, 100000) AS g")
    conn.execute("CREATE TABLE padded (id int, c char(3)); INSERT INTO padded VALUES (1, 'a'), (2, NULL)")
    destination = "%%di_destination dst --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n"
    streams = "  src: {}\n  people: {partitions: auto}\n  padded: {}\n"
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, streams), destination])
    result = run_notebook(nb, "--json", "--state-path", str(tmp_path / "state.sqlite"), capsys=capsys)
    assert result.code == 0, result.err
    blocks = {b["name"]: b for b in json.loads(result.out)["blocks"]}
    assert blocks["src"]["streams"]["src"]["rows"] == 30000 and blocks["src"]["streams"]["src"]["pass_through"] == "dst"
    assert blocks["src"]["streams"]["people"]["rows"] == 500 and blocks["src"]["streams"]["people"]["pass_through"] == "dst"
    assert blocks["dst"]["streams"]["src"]["rows"] == 30000
    # char(n): declined, so the source block reads it into its spill and the destination tails that
    assert blocks["src"]["streams"]["padded"]["rows"] == 2 and "pass_through" not in blocks["src"]["streams"]["padded"]
    assert sorted(paths) == ["arrow", "copy", "copy"]
    assert rows_of(tmp_path / "out.duckdb", "SELECT * FROM padded ORDER BY id") == [(1, "a  "), (2, None)]
    assert rows_of(tmp_path / "out.duckdb", "SELECT count(*), sum(id), count(jb) FROM src") == [(30000, 450015000, 29999)]
    assert rows_of(tmp_path / "out.duckdb", "SELECT count(*), max(name) FROM people") == [(500, "p99")]
    # a read error inside the scan fails the source block; the destination keeps what it had
    conn.execute("CREATE VIEW broken AS SELECT id, CASE WHEN id = 90000 THEN (1 / (id - id))::text ELSE t END AS t FROM base")
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, "  broken: {}\n"), destination])
    result = run_notebook(nb, "--json", "--state-path", str(tmp_path / "state.sqlite"), capsys=capsys)
    assert result.code != 0
    blocks = {b["name"]: b for b in json.loads(result.out)["blocks"]}
    assert blocks["src"]["status"] == "failed" and "division by zero" in blocks["src"]["error"]
    assert blocks["src"]["error"].startswith("block 'src', stream 'broken': reading failed")
    assert blocks["dst"]["status"] == "skipped"
    assert rows_of(tmp_path / "out.duckdb", "SELECT count(*) FROM broken") == [(0,)]  # created as the Arrow path does, no rows


def test_on_dask_the_pair_is_one_task_and_the_scanner_reads_the_stream(tmp_path, cluster, pg_config, pg_connect):  # noqa: F811
    conn = pg_connect()
    conn.execute(SCANNED_DDL)
    destination = "%%di_destination dst --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n"
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, "  src: {partitions: auto}\n"), destination])
    ran = cli_process("run", "-q", str(nb), "--json", "--state-path", str(tmp_path / "state.sqlite"), *dask_args(cluster))
    assert ran.returncode == 0, ran.stderr
    blocks = {b["name"]: b for b in json.loads(ran.stdout)["blocks"]}
    assert blocks["src"]["streams"]["src"] == {"rows": 30000, "seconds": blocks["src"]["streams"]["src"]["seconds"], "pass_through": "dst"}
    assert "jupyter-di-pair-src" in set(cluster[1].run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))
    assert rows_of(tmp_path / "out.duckdb", "SELECT count(*), sum(id), count(jb) FROM src") == [(30000, 450015000, 29999)]


KILL_MID_SCAN = """
import os, signal, threading, time
from pathlib import Path

def arm(marker, dsn):
    '''The first worker to start a scan dies once PostgreSQL shows one of its COPY statements running
    (the DuckDB INSERT is then half done); ``marker`` holds its pid and disarms the others.'''
    import psycopg
    from jupyter_di.connectors.duckdb import postgres_scan

    inner = getattr(postgres_scan.insert_scanned, "unarmed", postgres_scan.insert_scanned)

    def kill_when_copying():
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%ctid%'").fetchone()[0]:
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(0.005)

    def insert_scanned(con, table, copy):
        if not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            threading.Thread(target=kill_when_copying, daemon=True).start()
        return inner(con, table, copy)

    insert_scanned.unarmed = inner
    postgres_scan.insert_scanned = insert_scanned
"""


def test_on_dask_a_worker_killed_mid_scan_runs_the_pair_again_without_losses_or_duplicates(tmp_path, cluster, pg_config, pg_connect):  # noqa: F811
    conn = pg_connect()
    conn.execute("CREATE TABLE big AS SELECT g::bigint AS id, md5(g::text) AS t FROM generate_series(1, 1000000) AS g; ANALYZE big")
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        con.execute("CREATE TABLE big (id BIGINT, t VARCHAR); INSERT INTO big VALUES (-1, 'old')")
    marker = tmp_path / "killed"
    namespace: dict = {}
    exec(KILL_MID_SCAN, namespace)  # noqa: S102 - the test's own code, shipped to the workers
    dsn = f"host={pg_config['host']} port={pg_config['port']} user={pg_config['username']} dbname={pg_config['database']}"
    cluster[1].run(namespace["arm"], str(marker), dsn)
    destination = "%%di_destination dst --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n"
    nb = write_notebook(tmp_path / "nb.ipynb", [pg_source(pg_config, "  big: {}\n"), destination])
    ran = cli_process("run", "-q", str(nb), "--json", "--state-path", str(tmp_path / "state.sqlite"), *dask_args(cluster))
    assert ran.returncode == 0, ran.stderr
    assert marker.exists() and int(marker.read_text()) not in cluster[1].run(os.getpid).values()  # that worker died mid-scan
    blocks = {b["name"]: b for b in json.loads(ran.stdout)["blocks"]}
    assert blocks["src"]["streams"]["big"]["pass_through"] == "dst" and blocks["dst"]["streams"]["big"]["rows"] == 1000000
    got = rows_of(tmp_path / "out.duckdb", "SELECT count(*), count(DISTINCT id), min(id), max(id), count(DISTINCT t) FROM big")
    assert got == [(1000000, 1000000, 1, 1000000, 1000000)]  # the old row replaced, no row twice, none missing
    cluster[1].wait_for_workers(2, timeout=60)
