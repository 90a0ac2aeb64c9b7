"""``jupyter-di tap NAME``: a built-in source as a Singer tap — discovery, a sync, the state round trip,
and a pipe into ``jupyter-di target`` (as Meltano runs a tap and a target)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_di.cli", *args], input=stdin, capture_output=True, timeout=300)


def messages(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def incremental_catalog(catalog: dict[str, Any], stream: str, key: str) -> dict[str, Any]:
    for entry in catalog["streams"]:
        md = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        md["selected"] = entry["tap_stream_id"].split("-")[-1] == stream
        if md["selected"]:
            md.update({"replication-method": "INCREMENTAL", "replication-key": key})
    return catalog


def tap_round_trip(tmp_path: Path, name: str, config: dict[str, Any], stream: str, add_row) -> None:
    config_path = tmp_path / "tap.json"
    config_path.write_text(json.dumps(config))
    found = cli("tap", name, "--config", str(config_path), "--discover")
    assert found.returncode == 0, found.stderr
    catalog = json.loads(found.stdout)
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"].split("-")[-1] == stream)
    assert entry["key_properties"] == ["id"]
    assert set(entry["schema"]["properties"]) == {"id", "updated_at", "total", "note"}
    catalog_path = tmp_path / "catalog.json"
    catalog_path.write_text(json.dumps(incremental_catalog(catalog, stream, "updated_at")))

    first = cli("tap", name, "--config", str(config_path), "--catalog", str(catalog_path))
    assert first.returncode == 0, first.stderr
    out = messages(first.stdout)
    assert out[0]["type"] == "SCHEMA" and out[0]["key_properties"] == ["id"]
    records = [m["record"] for m in out if m["type"] == "RECORD"]
    assert [(r["id"], r["note"]) for r in records] == [(i, f"ü{i}") for i in range(1, 6)]
    state = [m for m in out if m["type"] == "STATE"][-1]["value"]
    bookmark = state["bookmarks"][out[0]["stream"]]
    assert bookmark["replication_key"] == "updated_at" and str(bookmark["replication_key_value"]).startswith("2024-01-05")

    # the state given back: only the row at the bookmark (inclusive) and the new one
    add_row()
    state_path = tmp_path / "state.json"
    state_path.write_text(json.dumps(state))
    second = cli("tap", name, "--config", str(config_path), "--catalog", str(catalog_path), "--state", str(state_path))
    assert second.returncode == 0, second.stderr
    assert [m["record"]["id"] for m in messages(second.stdout) if m["type"] == "RECORD"] == [5, 6]

    # piped into jupyter-di target duckdb, twice: one row per key, the state printed after the commit
    target_config = tmp_path / "target.json"
    target_config.write_text(json.dumps({"path": str(tmp_path / "out.duckdb")}))
    for _ in range(2):
        landed = cli("target", "duckdb", "--config", str(target_config), stdin=first.stdout + second.stdout)
        assert landed.returncode == 0, landed.stderr
        assert json.loads(landed.stdout.decode().splitlines()[-1])["bookmarks"]
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as con:
        table = out[0]["stream"]
        assert con.execute(f'SELECT id, note FROM "{table}" ORDER BY id').fetchall() == [(i, f"ü{i}") for i in range(1, 7)]


def test_sqlite_as_a_singer_tap(tmp_path):
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, updated_at TEXT, total REAL, note TEXT)")
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", [(i, f"2024-01-0{i}T00:00:00", i * 1.5, f"ü{i}") for i in range(1, 6)])

    def add_row():
        with sqlite3.connect(path) as con:
            con.execute("INSERT INTO orders VALUES (6, '2024-01-06T00:00:00', 9.0, 'ü6')")

    tap_round_trip(tmp_path, "sqlite", {"path": str(path)}, "orders", add_row)


@pytest.mark.postgres
def test_postgresql_as_a_singer_tap(tmp_path, pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, updated_at timestamptz, total numeric(10,2), note text)")
    for i in range(1, 6):
        conn.execute("INSERT INTO orders VALUES (%s, %s, %s, %s)", (i, f"2024-01-0{i}T00:00:00Z", i * 1.5, f"ü{i}"))

    def add_row():
        conn.execute("INSERT INTO orders VALUES (6, '2024-01-06T00:00:00Z', 9.0, 'ü6')")

    tap_round_trip(tmp_path, "postgresql", pg_config, "orders", add_row)


def test_tap_errors_are_clear_and_keep_secrets(tmp_path):
    secret = "tap-Secret-pw-991"
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": 1, "database": "x", "username": "u", "password": secret}))
    result = cli("tap", "postgresql", "--config", str(config), "--discover")
    assert result.returncode != 0 and secret not in (result.stderr + result.stdout).decode()
    assert "Traceback" not in result.stderr.decode()
    result = cli("tap", "nosuch", "--config", str(config), "--discover")
    assert result.returncode != 0 and "no connector named 'nosuch'" in result.stderr.decode()
