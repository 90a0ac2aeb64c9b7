"""One row per key in every destination: a stream with key properties upserts on them whatever its
replication method, FULL_TABLE included; within one load the last row of a key wins (UPDATE) or the
first (IGNORE).  The source here is CSV files holding the same key three times."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import duckdb
import pytest

from tests.support.notebooks import run_notebook, write_notebook

ROWS = [(1, "a"), (2, "b"), (1, "c"), (3, "d"), (2, "e"), (1, "f")]
LAST = {1: "f", 2: "e", 3: "d"}
FIRST = {1: "a", 2: "b", 3: "d"}


def notebook(tmp_path: Path, destination: str, method: str, source_settings: str = "    key_properties: [id]\n") -> Path:
    folder = tmp_path / "csvs"
    folder.mkdir(exist_ok=True)
    with open(folder / "orders.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "v"])
        writer.writerows(ROWS)
    return write_notebook(
        tmp_path / "keys.ipynb",
        [
            f"%%di_source src\nsource: files\nconfig:\n  path: {folder}\n  format: csv\nstreams:\n  orders:\n{source_settings}",
            f"%%di_destination wh --upstream src\n{destination}streams:\n  orders:\n    unique_conflict_method: {method}\n",
        ],
    )


def landed(kind: str, tmp_path: Path, connect=None) -> list[tuple]:
    if kind == "duckdb":
        with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
            return con.execute("SELECT id, v FROM orders ORDER BY id").fetchall()
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "out.sqlite") as con:
            return con.execute("SELECT id, v FROM orders ORDER BY id").fetchall()
    if kind == "files":
        lines = (tmp_path / "lake" / "orders.jsonl").read_text().splitlines()
        return sorted((r["id"], r["v"]) for r in map(json.loads, lines))
    return connect().execute("SELECT id, v FROM orders ORDER BY id").fetchall()


def destination(kind: str, tmp_path: Path, pg_config=None) -> str:
    if kind == "duckdb":
        return f"destination: duckdb\nconfig:\n  path: {tmp_path / 'out.duckdb'}\n"
    if kind == "sqlite":
        return f"destination: sqlite\nconfig:\n  path: {tmp_path / 'out.sqlite'}\n"
    if kind == "files":
        return f"destination: files\nconfig:\n  path: {tmp_path / 'lake'}\n  format: jsonl\n"
    return "destination: postgresql\nconfig: " + json.dumps(pg_config) + "\n"


def check(kind: str, tmp_path: Path, capsys, pg_config=None, connect=None) -> None:
    for method, want in (("UPDATE", LAST), ("IGNORE", FIRST)):
        path = notebook(tmp_path, destination(kind, tmp_path, pg_config), method)
        for _ in range(2):  # a rerun replaces the rows: still one per key
            result = run_notebook(path, capsys=capsys)
            assert result.code == 0, result.out + result.err
            assert landed(kind, tmp_path, connect) == sorted(want.items()), (kind, method)


@pytest.mark.parametrize("kind", ["duckdb", "sqlite", "files"])
def test_full_table_keeps_one_row_per_key(kind, tmp_path, capsys):
    check(kind, tmp_path, capsys)


@pytest.mark.postgres
def test_full_table_keeps_one_row_per_key_in_postgresql(tmp_path, capsys, pg_config, pg_connect):
    check("postgresql", tmp_path, capsys, pg_config, pg_connect)


def test_without_keys_every_row_is_kept(tmp_path, capsys):
    path = notebook(tmp_path, destination("duckdb", tmp_path), "UPDATE", source_settings="    replication_method: FULL_TABLE\n")
    assert run_notebook(path, capsys=capsys).code == 0
    assert len(landed("duckdb", tmp_path)) == len(ROWS)
