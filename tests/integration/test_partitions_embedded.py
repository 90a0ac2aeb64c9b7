"""``partitions:`` on DuckDB and SQLite sources: the stream is read as one query, whole, and the run
report says why (measured: neither engine reads faster as key-range parts on threads)."""

from __future__ import annotations

import sqlite3

import duckdb

from tests.support.notebooks import cli_process, duckdb_query, write_notebook


def test_partitions_on_duckdb_and_sqlite_sources_read_one_query_and_say_why(tmp_path):
    lite, duck, out = tmp_path / "src.sqlite", tmp_path / "src.duckdb", tmp_path / "out.duckdb"
    with sqlite3.connect(lite) as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 3001)])
    with duckdb.connect(str(duck)) as con:
        con.execute("CREATE TABLE u AS SELECT range AS id, 'w' || range AS v FROM range(1, 3001)")
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        [
            f"%%di_source lite\nsource: sqlite\nconfig:\n  path: {lite}\nstreams:\n  t: {{partitions: 2}}\n",
            f"%%di_source duck\nsource: duckdb\nconfig:\n  path: {duck}\nstreams:\n  u: {{partitions: auto}}\n",
            f"%%di_destination out --upstream lite duck\ndestination: duckdb\nconfig:\n  path: {out}\n",
        ],
    )
    ran = cli_process("run", str(notebook))
    assert ran.returncode == 0, ran.stderr
    assert "block 'lite', stream 't': partitions: read as one query: SQLite rows become Python values" in ran.stderr
    assert "block 'duck', stream 'u': partitions: read as one query: DuckDB already scans one query" in ran.stderr
    assert duckdb_query(out, "SELECT count(*), count(DISTINCT id), sum(id) FROM t") == [(3000, 3000, 4501500)]
    assert duckdb_query(out, "SELECT count(*), count(DISTINCT id), sum(id) FROM u") == [(3000, 3000, 4501500)]
