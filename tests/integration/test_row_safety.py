"""Paths that used to lose, skip or double rows while the run said "done" (issue 12, items 1-4 and 7).

Every test runs real notebooks through ``jupyter-di run`` against a real
PostgreSQL source (and DuckDB, SQLite and files sources) and asserts the rows
at the destination and the saved bookmarks.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from jupyter_di.state import api
from tests.support.notebooks import duckdb_query, pg_source, rows_read, write_notebook
from tests.support.notebooks import run_notebook as run


def notebook(tmp_path, cells: list[str], name: str = "safety.ipynb"):
    return write_notebook(tmp_path / name, cells)


def duck_dest(name: str = "wh", upstream: str = "src", extra: str = "") -> str:
    return f"%%di_destination {name} --upstream {upstream}\ndestination: duckdb\nconfig:\n  path: out.duckdb\n{extra}"


def duck(tmp_path, sql: str, file: str = "out.duckdb"):
    return duckdb_query(tmp_path / file, sql)


INCREMENTAL = "    replication_method: INCREMENTAL\n"


def incremental_into_duckdb(tmp_path, pg_config, stream: str, bookmark: str, extra: str = "") -> Path:
    """A notebook: the PostgreSQL table ``stream``, INCREMENTAL on ``bookmark``, into DuckDB."""
    streams = f"  {stream}:\n" + INCREMENTAL + f"    bookmark_properties: [{bookmark}]\n" + extra
    return notebook(tmp_path, [pg_source(pg_config, streams), duck_dest()])


# -- 1. NULL cursors ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_null_cursor_rows_are_synced_counted_and_never_stall_the_bookmark(tmp_path, pg_connect, pg_config, capsys):
    conn = pg_connect()
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, modified_at timestamptz, v text)")
    # 100 rows, every 4th with a NULL cursor (25%)
    conn.execute(
        "INSERT INTO items SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE '2024-01-01'::timestamptz + g * interval '1 hour' END, 'v' || g "
        "FROM generate_series(1, 100) g"
    )
    key = "    key_properties: [id]\n"
    path = incremental_into_duckdb(tmp_path, pg_config, "items", "modified_at", key)

    code, out, err = run(path, capsys=capsys)
    assert code == 0, err  # nothing was skipped: every row, NULL cursor or not, was read
    assert rows_read(out) == 100
    assert "25 rows with NULL modified_at were synced, but cannot be tracked incrementally" in err
    assert api.get_bookmark(path, "src", "items") == {"modified_at": "2024-01-05T03:00:00+00:00"}  # row 99, not NULL
    assert duck(tmp_path, "SELECT count(*), count(modified_at) FROM items") == [(100, 75)]

    # later runs keep reading new changes (the bug: a saved NULL bookmark read 0 rows forever) ...
    conn.execute("UPDATE items SET v = 'changed', modified_at = '2024-02-01' WHERE id IN (1, 2)")
    conn.execute("UPDATE items SET v = 'lost?' WHERE id = 4")  # a NULL-cursor row changes: no bookmark can see it
    code, out, err = run(path, capsys=capsys)
    assert rows_read(out) == 1 + 2  # the tie at the bookmark (row 99) and the two changed rows
    assert duck(tmp_path, "SELECT id, v FROM items WHERE id IN (1, 2, 4) ORDER BY id") == [(1, "changed"), (2, "changed"), (4, "v4")]
    assert api.get_bookmark(path, "src", "items") == {"modified_at": "2024-02-01T00:00:00+00:00"}
    # ... and say that changes to NULL-cursor rows are not synced: not a clean exit
    assert code == 3
    assert "warning: block 'src', stream 'items': 25 rows with NULL modified_at cannot be tracked incrementally" in err

    # null_cursor: resync re-reads them every run, so the change arrives and the run is clean
    resync = incremental_into_duckdb(tmp_path, pg_config, "items", "modified_at", key + "    null_cursor: resync\n")
    code, out, err = run(resync, capsys=capsys)
    assert code == 0, err
    assert rows_read(out) == 2 + 25  # the two rows at the bookmark (ties) and every NULL-cursor row
    assert duck(tmp_path, "SELECT v FROM items WHERE id = 4") == [("lost?",)]
    assert duck(tmp_path, "SELECT count(*), count(DISTINCT id) FROM items") == [(100, 100)]

    # null_cursor: ignore accepts it (exit 0), and a bad mode is one clear error
    ignore = incremental_into_duckdb(tmp_path, pg_config, "items", "modified_at", key + "    null_cursor: ignore\n")
    assert run(ignore, capsys=capsys)[0] == 0
    bad = incremental_into_duckdb(tmp_path, pg_config, "items", "modified_at", key + "    null_cursor: sometimes\n")
    code, _, err = run(bad, capsys=capsys)
    assert code == 1 and "block 'src', stream 'items': null_cursor 'sometimes' is not one of report, resync, ignore" in err


@pytest.mark.postgres
def test_a_state_saved_with_a_null_bookmark_heals(tmp_path, pg_connect, pg_config, capsys):
    """States written by older versions hold ``{"modified_at": null}``: that must read everything, not nothing."""
    conn = pg_connect()
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, modified_at timestamptz)")
    conn.execute("INSERT INTO items SELECT g, '2024-01-01'::timestamptz + g * interval '1 day' FROM generate_series(1, 10) g")
    path = incremental_into_duckdb(tmp_path, pg_config, "items", "modified_at")
    store, name = api._store(path, None)
    store.set(name, "src", "items", {"bookmark": {"modified_at": None}})
    code, out, err = run(path, capsys=capsys)
    assert code == 0, err
    assert rows_read(out) == 10
    assert api.get_bookmark(path, "src", "items") == {"modified_at": "2024-01-11T00:00:00+00:00"}


@pytest.mark.postgres
def test_composite_bookmark_with_nulls(tmp_path, pg_connect, pg_config, capsys):
    conn = pg_connect()
    conn.execute("CREATE TABLE ev (id int PRIMARY KEY, day date, seq int)")
    conn.execute(
        "INSERT INTO ev SELECT g, DATE '2024-01-01' + (g / 10), CASE WHEN g % 5 = 0 THEN NULL ELSE g END FROM generate_series(1, 40) g"
    )
    path = incremental_into_duckdb(tmp_path, pg_config, "ev", "day, seq")
    code, out, err = run(path, capsys=capsys)
    assert code == 0 and rows_read(out) == 40
    assert "8 rows with NULL day or seq were synced" in err
    assert api.get_bookmark(path, "src", "ev") == {"day": "2024-01-04", "seq": 39}  # row 40 has a NULL seq
    conn.execute("INSERT INTO ev VALUES (41, '2024-01-06', 41)")
    code, out, err = run(path, capsys=capsys)
    assert rows_read(out) == 3  # 39 (tie), 40 (day > bookmark day, NULL seq), 41
    assert duck(tmp_path, "SELECT count(*), count(DISTINCT id) FROM ev") == [(41, 41)]
    assert api.get_bookmark(path, "src", "ev") == {"day": "2024-01-06", "seq": 41}


@pytest.mark.postgres
def test_jsonb_cursor_keeps_reading_and_warns(tmp_path, pg_connect, pg_config, capsys):
    conn = pg_connect()
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, version jsonb NOT NULL)")
    conn.execute("INSERT INTO docs SELECT g, to_jsonb(g) FROM generate_series(1, 20) g")
    path = incremental_into_duckdb(tmp_path, pg_config, "docs", "version")
    code, out, err = run(path, capsys=capsys)
    assert code == 0 and rows_read(out) == 20
    assert "bookmark column 'version' is JSON" in err
    assert api.get_bookmark(path, "src", "docs") == {"version": 20}  # the JSON value, not its text
    conn.execute("UPDATE docs SET version = to_jsonb(21 + id) WHERE id IN (3, 4)")
    code, out, err = run(path, capsys=capsys)
    assert rows_read(out) == 3  # the tie (20) and the two changed rows (was: 0 rows, forever)
    assert api.get_bookmark(path, "src", "docs") == {"version": 25}


def test_null_cursors_in_duckdb_sqlite_and_files_sources(tmp_path, capsys):
    with duckdb.connect(str(tmp_path / "src.duckdb")) as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts TIMESTAMP)")
        con.execute(
            "INSERT INTO t SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE TIMESTAMP '2024-01-01' + g * INTERVAL 1 HOUR END FROM range(1, 21) r(g)"
        )
    with sqlite3.connect(tmp_path / "src.sqlite") as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts TIMESTAMP)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(g, None if g % 4 == 0 else f"2024-01-01 {g:02d}:00:00") for g in range(1, 21)])
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "t.csv").write_text(
        "id,ts\n" + "".join(f"{g},{'' if g % 4 == 0 else f'2024-01-01T{g:02d}:00:00'}\n" for g in range(1, 21))
    )
    sources = {
        "duck": "source: duckdb\nconfig:\n  path: src.duckdb\n",
        "lite": "source: sqlite\nconfig:\n  path: src.sqlite\n",
        "csv": "source: files\nconfig:\n  path: csvs\n  format: csv\n",
    }
    streams = "streams:\n  t:\n" + INCREMENTAL + "    bookmark_properties: [ts]\n    key_properties: [id]\n"
    for name, body in sources.items():
        path = notebook(
            tmp_path,
            [f"%%di_source {name}\n{body}{streams}", duck_dest(f"to_{name}", name, f"streams:\n  t:\n    destination_table: t_{name}\n")],
            f"{name}.ipynb",
        )
        code, out, err = run(path, capsys=capsys)
        assert code == 0 and rows_read(out, name) == 20, (name, err)
        assert "5 rows with NULL ts were synced" in err, name
        assert api.get_bookmark(path, name, "t")["ts"].startswith("2024-01-01T19:00:00"), name
        code, out, err = run(path, capsys=capsys)
        assert rows_read(out, name) == 1, name  # the tie only: the bookmark did not stall on a NULL
        assert code == 3 and "5 rows with NULL ts cannot be tracked incrementally" in err, (name, err)
        assert duck(tmp_path, f"SELECT count(*), count(DISTINCT id) FROM t_{name}") == [(20, 20)], name


# -- 2. one-run overrides ----------------------------------------------------------------------


@pytest.mark.postgres
def test_a_one_run_override_never_moves_the_saved_bookmark(tmp_path, pg_connect, pg_config, capsys):
    conn = pg_connect()
    conn.execute("CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamptz NOT NULL, v text)")
    conn.execute("INSERT INTO orders SELECT g, '2024-01-01'::timestamptz + g * interval '1 day', 'a' FROM generate_series(1, 10) g")
    path = incremental_into_duckdb(tmp_path, pg_config, "orders", "updated_at", "    key_properties: [id]\n")
    assert run(path, capsys=capsys)[0] == 0
    saved = api.get_bookmark(path, "src", "orders")
    assert saved == {"updated_at": "2024-01-11T00:00:00+00:00"}

    # 20 rows change, spread over March; an override run reads only those after the 15th ...
    conn.execute("INSERT INTO orders SELECT g, '2024-03-01'::timestamptz + (g - 10) * interval '1 day', 'b' FROM generate_series(11, 30) g")
    code, out, err = run(path, "--bookmark", "src.orders.updated_at=2024-03-15T00:00:00+00:00", capsys=capsys)
    assert code == 0, err
    assert rows_read(out) == 7  # ids 24..30 (15th..21st of March)
    assert api.get_bookmark(path, "src", "orders") == saved  # "this run only"
    # ... and the next normal run still reads every row after the saved bookmark: none is lost
    code, out, _ = run(path, capsys=capsys)
    assert code == 0 and rows_read(out) == 1 + 20
    assert duck(tmp_path, "SELECT count(*), count(DISTINCT id) FROM orders") == [(30, 30)]
    assert api.get_bookmark(path, "src", "orders") == {"updated_at": "2024-03-21T00:00:00+00:00"}


@pytest.mark.postgres
def test_an_override_naming_nothing_is_an_error(tmp_path, pg_connect, pg_config, capsys):
    conn = pg_connect()
    conn.execute("CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamptz NOT NULL)")
    conn.execute("INSERT INTO orders VALUES (1, '2024-01-01')")
    path = incremental_into_duckdb(tmp_path, pg_config, "orders", "updated_at")
    cases = {
        "nope.orders.updated_at=2024-01-01": "--bookmark nope.orders: there is no block named 'nope'",
        "wh.orders.updated_at=2024-01-01": "block 'wh' is a destination block; bookmarks belong to source blocks",
        "src.order.updated_at=2024-01-01": "a bookmark override names stream 'order', which this block does not read",
        "src.orders.created_at=2024-01-01": "a bookmark override names column 'created_at', which is not a bookmark property",
    }
    for override, message in cases.items():
        code, out, err = run(path, "--bookmark", override, capsys=capsys)
        assert code in (1, 2) and message in err, (override, err)
        assert api.get_bookmark(path, "src", "orders") is None
    assert not (tmp_path / "out.duckdb").exists() or duck(
        tmp_path, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'"
    ) == [(0,)]


# -- 3. keyless INCREMENTAL streams -------------------------------------------------------------


@pytest.mark.postgres
def test_keys_are_discovered_or_the_stream_is_refused(tmp_path, pg_connect, pg_config, capsys):
    conn = pg_connect()
    conn.execute("CREATE TABLE with_pk (id int PRIMARY KEY, at timestamptz NOT NULL)")
    conn.execute("CREATE TABLE with_unique (code text NOT NULL UNIQUE, at timestamptz NOT NULL)")
    conn.execute("CREATE TABLE no_key (name text, at timestamptz NOT NULL)")
    for table, key in (("with_pk", "g"), ("with_unique", "'c' || g"), ("no_key", "'n' || g")):
        # every row shares one cursor value: the worst case for ties
        conn.execute(f"INSERT INTO {table} SELECT {key}, '2024-01-01' FROM generate_series(1, 100) g")

    def streams(table: str, extra: str = "") -> str:
        return f"  {table}:\n" + INCREMENTAL + "    bookmark_properties: [at]\n" + extra

    path = notebook(tmp_path, [pg_source(pg_config, streams("with_pk") + streams("with_unique")), duck_dest()])
    for _ in range(4):  # three unchanged reruns re-read the 100 tied rows: upserted, never appended
        code, out, err = run(path, capsys=capsys)
        assert code == 0, err
    assert duck(tmp_path, "SELECT count(*), count(DISTINCT id) FROM with_pk") == [(100, 100)]
    assert duck(tmp_path, "SELECT count(*), count(DISTINCT code) FROM with_unique") == [(100, 100)]

    refused = notebook(tmp_path, [pg_source(pg_config, streams("no_key")), duck_dest()], "refused.ipynb")
    code, _, err = run(refused, capsys=capsys)
    assert code == 1
    assert "block 'src', stream 'no_key': an INCREMENTAL stream needs key_properties" in err
    assert "append_only: true" in err
    assert duck(tmp_path, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'no_key'") == [(0,)]

    appended = notebook(tmp_path, [pg_source(pg_config, streams("no_key", "    append_only: true\n")), duck_dest()], "append.ipynb")
    assert run(appended, capsys=capsys)[0] == 0
    assert run(appended, capsys=capsys)[0] == 0
    assert duck(tmp_path, "SELECT count(*) FROM no_key") == [(200,)]  # duplicates at ties, accepted explicitly


def test_keyless_incremental_from_files_and_sqlite_is_refused(tmp_path, capsys):
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "t.csv").write_text("name,at\na,2024-01-01T00:00:00\nb,2024-01-01T00:00:00\n")
    with sqlite3.connect(tmp_path / "src.sqlite") as con:
        con.execute("CREATE TABLE t (name TEXT, at TIMESTAMP)")
    streams = "streams:\n  t:\n" + INCREMENTAL + "    bookmark_properties: [at]\n"
    for name, body in {
        "csv": "source: files\nconfig:\n  path: csvs\n  format: csv\n",
        "lite": "source: sqlite\nconfig:\n  path: src.sqlite\n",
    }.items():
        path = notebook(tmp_path, [f"%%di_source {name}\n{body}{streams}", duck_dest("wh", name)], f"{name}.ipynb")
        code, _, err = run(path, capsys=capsys)
        assert code == 1 and f"block '{name}', stream 't': an INCREMENTAL stream needs key_properties" in err, err


# -- 4. internal names ---------------------------------------------------------------------------


def test_internal_tables_never_collide_with_user_tables(tmp_path, capsys):
    with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
        con.execute("CREATE TABLE plain__jupyter_di_staging AS SELECT range AS x FROM range(1000)")
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "plain.csv").write_text("id,v\n1,a\n2,b\n")
    src = "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  format: csv\n"
    path = notebook(tmp_path, [src, duck_dest()])
    code, _, err = run(path, capsys=capsys)
    assert code == 0, err
    assert duck(tmp_path, "SELECT count(*) FROM plain__jupyter_di_staging") == [(1000,)]  # the user's table survives
    assert duck(tmp_path, "SELECT id, v FROM plain ORDER BY id") == [(1, "a"), (2, "b")]
    assert duck(tmp_path, "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '_jupyter_di_staging%'") == [(0,)]

    hijack = notebook(tmp_path, [src, duck_dest(extra="streams:\n  plain:\n    destination_table: _jupyter_di_state\n")], "hijack.ipynb")
    code, _, err = run(hijack, capsys=capsys)
    assert code == 1
    assert "block 'wh', stream 'plain': destination table '_jupyter_di_state' starts with '_jupyter_di_', which is reserved" in err
    # the state table is still the state table, with the state of the first notebook's stream in it
    assert [
        c
        for (c,) in duck(
            tmp_path, "SELECT column_name FROM information_schema.columns WHERE table_name = '_jupyter_di_state' ORDER BY ordinal_position"
        )
    ] == ["state_key", "state", "updated_at"]


# -- 7. streams no destination takes -------------------------------------------------------------


@pytest.mark.postgres
def test_a_stream_only_python_blocks_read_advances_its_bookmark(tmp_path, pg_connect, pg_config, capsys):
    conn = pg_connect()
    for table in ("orders", "events"):
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, at timestamptz NOT NULL)")
        conn.execute(f"INSERT INTO {table} SELECT g, '2024-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 50) g")
    streams = "".join(f"  {t}:\n" + INCREMENTAL + "    bookmark_properties: [at]\n" for t in ("orders", "events"))
    py = "%%di_block count_events --upstream src\n@transformer\ndef f(src, **kw):\n    return {'events': src[1].num_rows}\n"
    dest = duck_dest(extra="streams:\n  events:\n    selected: false\n")
    path = notebook(tmp_path, [pg_source(pg_config, streams), dest, py])
    code, out, err = run(path, capsys=capsys)
    assert code == 0, err
    assert api.get_bookmark(path, "src", "orders") == {"at": "2024-01-03T02:00:00+00:00"}
    assert api.get_bookmark(path, "src", "events") == {"at": "2024-01-03T02:00:00+00:00"}
    code, out, err = run(path, capsys=capsys)
    assert rows_read(out, stream="events") == 1  # was: the same 50 events every run
    assert rows_read(out, stream="orders") == 1
    assert duck(tmp_path, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'events'") == [(0,)]


# -- the notebook shows what the CLI prints -------------------------------------------------------


def test_the_kernel_shows_null_cursor_warnings_in_the_cell(tmp_path, monkeypatch):
    from IPython.utils.capture import capture_output

    from tests.support.shell import fresh_shell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("JUPYTER_DI_PIPELINE", "warnings")
    with duckdb.connect(str(tmp_path / "src.duckdb")) as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts TIMESTAMP)")
        con.execute("INSERT INTO t VALUES (1, TIMESTAMP '2024-01-01'), (2, NULL), (3, NULL)")
    shell = fresh_shell()
    try:
        cell = (
            "%%di_source src\nsource: duckdb\nconfig:\n  path: src.duckdb\nstreams:\n  t:\n"
            + INCREMENTAL
            + "    bookmark_properties: [ts]\n"
        )
        with capture_output() as first:
            shell.ok(cell)
        html = "".join(o.data.get("text/html", "") for o in first.outputs)
        assert "2 rows with NULL ts were synced, but cannot be tracked incrementally" in html
        with capture_output() as second:
            shell.ok(cell.replace("streams:", "# rerun\nstreams:"))
        html = "".join(o.data.get("text/html", "") for o in second.outputs)
        assert "2 rows with NULL ts cannot be tracked incrementally: changes to them are not synced" in html
    finally:
        shell.ip.extension_manager.unload_extension("jupyter_di")
