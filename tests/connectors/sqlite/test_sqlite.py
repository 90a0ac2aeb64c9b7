"""SQLite source/destination against real database files: the shared contract
cases, SQLite's storage forms, and DuckDB <-> SQLite round trips."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jupyter_di.connectors.base import INCREMENTAL, JSON_LOGICAL_TYPE, LOGICAL_TYPE_KEY, Chunk, ReadRequest, WriteRequest
from jupyter_di.connectors.duckdb import DuckDBDestination, DuckDBSource
from jupyter_di.connectors.sqlite import SQLiteDestination, SQLiteSource
from jupyter_di.errors import ConnectionFailed, SchemaMismatch

from ..duckdb.test_duckdb import EVIL, UTC, ContractCases, all_types_batch, batch, rows_of, settings, ws


class TestSQLite(ContractCases):
    ext = ".sqlite"
    spec_name = "sqlite"

    def destination(self, path: Path, **config: Any) -> SQLiteDestination:
        return SQLiteDestination({"path": str(path), **config})

    def source(self, path: Path, **config: Any) -> SQLiteSource:
        return SQLiteSource({"path": str(path), **config})

    def query(self, path: Path, sql: str) -> list[tuple]:
        con = sqlite3.connect(path)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def table_names(self, path: Path) -> list[str]:
        return [r[0] for r in self.query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]

    def hold_lock_code(self, path: Path) -> str:
        return (
            f"import sqlite3, sys\ncon = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "con.execute('BEGIN EXCLUSIVE')\nprint('ready', flush=True)\nsys.stdin.read()\ncon.execute('ROLLBACK')\n"
        )

    def test_discover_declared_types_keys_and_views(self, db):
        con = sqlite3.connect(db)
        con.executescript(
            """
            CREATE TABLE "Line Items" ("Order Id" INTEGER, line INT, price NUMERIC(10,3), note VARCHAR(20),
                                       at DATETIME, raw BLOB, ratio DOUBLE PRECISION, ok BOOLEAN, anything,
                                       PRIMARY KEY ("Order Id", line));
            CREATE TABLE plain (id INTEGER PRIMARY KEY, born DATE, meta JSON);
            CREATE VIEW cheap AS SELECT "Order Id", price FROM "Line Items" WHERE price < 10;
            INSERT INTO "Line Items" VALUES (1, 1, 9.5, 'a', '2024-01-02T03:04:05', x'00ff', 0.5, 1, 7);
            INSERT INTO "Line Items" VALUES (1, 2, '12.345', NULL, '2024-01-02 03:04:06.5', NULL, 2, 0, 'x');
            """
        )
        con.close()
        catalog = self.source(db).discover()
        by_id = {e["tap_stream_id"]: e for e in catalog["streams"]}
        assert set(by_id) == {"Line Items", "plain", "cheap"}
        items = by_id["Line Items"]
        assert items["key_properties"] == ["Order Id", "line"]
        assert by_id["plain"]["key_properties"] == ["id"]
        props = items["schema"]["properties"]
        assert props["price"] == {"type": ["null", "number"], "multipleOf": 0.001}
        assert props["at"] == {"type": ["null", "string"], "format": "date-time"}
        assert props["ok"] == {"type": ["null", "boolean"]}
        md = {tuple(m["breadcrumb"]): m["metadata"] for m in items["metadata"]}
        assert md[()]["valid-replication-keys"] == ["Order Id", "line", "price", "note", "at", "ratio", "anything"]
        assert md[("properties", "note")]["sql-datatype"] == "VARCHAR(20)"
        got = rows_of(self.source(db).read(ReadRequest(settings("Line Items"))))
        assert got == [
            {
                "Order Id": 1,
                "line": 1,
                "price": decimal.Decimal("9.500"),
                "note": "a",
                "at": dt.datetime(2024, 1, 2, 3, 4, 5),
                "raw": b"\x00\xff",
                "ratio": 0.5,
                "ok": True,
                "anything": "7",
            },
            {
                "Order Id": 1,
                "line": 2,
                "price": decimal.Decimal("12.345"),
                "note": None,
                "at": dt.datetime(2024, 1, 2, 3, 4, 6, 500000),
                "raw": None,
                "ratio": 2.0,
                "ok": False,
                "anything": "x",
            },
        ]
        assert rows_of(self.source(db).read(ReadRequest(settings("cheap")))) == [{"Order Id": 1, "price": decimal.Decimal("9.500")}]
        meta = self.source(db).read(ReadRequest(settings("plain"))).schema.field("meta")
        assert meta.metadata == {LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}

    def test_storage_forms(self, db):
        self.write(db, ws("types"), all_types_batch())
        declared = {r[1]: r[2] for r in self.query(db, 'PRAGMA table_info("types")')}
        assert declared == {
            "i": "INTEGER",
            "f": "REAL",
            "d": "DECIMAL TEXT(12,2)",
            "b": "BOOLEAN",
            "tz": "TIMESTAMPTZ",
            "naive": "TIMESTAMP",
            "day": "DATE",
            "s": "TEXT",
            "j": "JSON",
            "li": "JSON ARRAY BIGINT",
            "ls": "JSON ARRAY TEXT",
        }
        row = self.query(db, 'SELECT d, typeof(d), b, tz, naive, day, li, ls FROM "types" WHERE i = 0')
        assert row == [("-0.01", "text", 0, "1970-01-01 00:00:00.000000+00:00", "2024-01-01 00:00:00.000001", "1900-01-01", "[]", "[]")]
        first = self.query(db, 'SELECT d, li, ls FROM "types" WHERE i < 0')
        assert first == [("1234567890.12", "[1,null,3]", '["a","\U0001f600",""]')]

    def test_wal_mode_and_state_table(self, db):
        self.write(db, ws(), batch(id=[1]), state_key="k", states=[{"b": "2024-01-01T00:00:00+00:00"}])
        assert self.query(db, "PRAGMA journal_mode") == [("wal",)]
        [(key, state, updated)] = self.query(db, 'SELECT state_key, state, updated_at FROM "_jupyter_di_state"')
        assert (key, json.loads(state)) == ("k", {"b": "2024-01-01T00:00:00+00:00"})
        assert updated.startswith(str(dt.datetime.now(UTC).year))

    def test_incremental_bookmark_on_decimal_and_date(self, db):
        b = pa.record_batch(
            {
                "id": [1, 2, 3, 4],
                "amt": pa.array([decimal.Decimal(x) for x in ("9.50", "10.00", "100.25", "2.00")], pa.decimal128(8, 2)),
                "day": pa.array([dt.date(2024, 1, d) for d in (4, 3, 2, 1)], pa.date32()),
            }
        )
        self.write(db, ws(), b)
        by_amount = settings(replication_method=INCREMENTAL, bookmark_properties=["amt"], key_properties=["id"])
        got = rows_of(self.source(db).read(ReadRequest(by_amount, bookmark={"amt": "9.50"})))
        assert [r["id"] for r in got] == [1, 2, 3]  # numeric order, not text order
        by_day = settings(replication_method=INCREMENTAL, bookmark_properties=["day"], key_properties=["id"])
        got = rows_of(self.source(db).read(ReadRequest(by_day, bookmark={"day": "2024-01-03"})))
        assert [r["id"] for r in got] == [2, 1]

    def test_value_not_fitting_declared_type_is_named(self, db):
        con = sqlite3.connect(db)
        con.executescript("CREATE TABLE t (id INTEGER, at TIMESTAMP); INSERT INTO t VALUES (1, 'yesterday');")
        con.close()
        with pytest.raises(SchemaMismatch, match="column 'at' is declared TIMESTAMP"):
            rows_of(self.source(db).read(ReadRequest(settings())))

    def test_not_a_database_is_connection_failed(self, tmp_path):
        path = tmp_path / "notes.sqlite"
        path.write_text("just some text, long enough to be read as a header by sqlite " * 4)
        with pytest.raises(ConnectionFailed, match="not a SQLite database"):
            self.source(path).discover()


# --------------------------------------------------------------------------- DuckDB <-> SQLite


def _copy(src, dest, stream: str, table: str | None = None) -> None:
    reader = src.read(ReadRequest(settings(stream), batch_size=2))
    chunks = (Chunk(b) for b in reader)
    dest.write(WriteRequest(ws(stream, destination_table=table, replication_method="FULL_TABLE"), reader.schema), chunks)


def test_duckdb_to_sqlite_to_duckdb_round_trip(tmp_path):
    first, middle, last = tmp_path / "a.duckdb", tmp_path / "b.sqlite", tmp_path / "c.duckdb"
    original = all_types_batch()
    DuckDBDestination({"path": str(first)}).write(WriteRequest(ws("types"), original.schema), [Chunk(original)])
    _copy(DuckDBSource({"path": str(first)}), SQLiteDestination({"path": str(middle)}), "types")
    _copy(SQLiteSource({"path": str(middle)}), DuckDBDestination({"path": str(last)}), "types", table=EVIL)
    for path, stream, src in ((middle, "types", SQLiteSource), (last, EVIL, DuckDBSource)):
        table = src({"path": str(path)}).read(ReadRequest(settings(stream))).read_all()
        assert table.schema.field("j").metadata == {LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}
        assert [table.schema.field(f.name).type for f in original.schema] == original.schema.types
        got = sorted(table.to_pylist(), key=lambda r: (r["i"] is None, r["i"] or 0))
        want = sorted(original.to_pylist(), key=lambda r: (r["i"] is None, r["i"] or 0))
        for g, w in zip(got, want):
            if w["j"] is not None:
                assert json.loads(g.pop("j")) == json.loads(w.pop("j"))
        assert got == want


def test_sqlite_upsert_into_duckdb_keeps_state_with_rows(tmp_path):
    lite, duck = tmp_path / "src.sqlite", tmp_path / "dst.duckdb"
    SQLiteDestination({"path": str(lite)}).write(
        WriteRequest(ws("users"), batch(id=[1, 2], name=["ann", "bob"]).schema),
        [Chunk(batch(id=[1, 2], name=["ann", "bob"]))],
    )
    dest = DuckDBDestination({"path": str(duck)})
    for _ in range(2):  # a rerun upserts, never duplicates
        reader = SQLiteSource({"path": str(lite)}).read(ReadRequest(settings("users")))
        dest.write(
            WriteRequest(ws("users", unique_constraints=["id"]), reader.schema, state_key="p/b/users"),
            (Chunk(b, {"seen": b.num_rows}) for b in reader),
        )
    assert DuckDBSource({"path": str(duck)}).read(ReadRequest(settings("users"))).read_all().sort_by("id").to_pylist() == [
        {"id": 1, "name": "ann"},
        {"id": 2, "name": "bob"},
    ]
    assert dest.load_state("p/b/users") == {"seen": 2}
