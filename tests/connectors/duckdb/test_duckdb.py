"""DuckDB source/destination against real database files, plus the contract cases
that the SQLite tests reuse (``ContractCases``: one set of behaviours, two engines)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from jupyter_di.connectors import registry
from jupyter_di.connectors.base import (
    FULL_TABLE,
    INCREMENTAL,
    JSON_LOGICAL_TYPE,
    LOGICAL_TYPE_KEY,
    Chunk,
    ReadRequest,
    StreamSettings,
    WriteRequest,
)
from jupyter_di.connectors.duckdb import DuckDBDestination, DuckDBSource
from jupyter_di.errors import ConfigError, ConnectionFailed, SchemaMismatch

EVIL = 'x" int); create table pwned(x int); --'
UTC = dt.timezone.utc


def batch(**columns: Any) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def settings(stream: str = "t", **kw: Any) -> StreamSettings:
    """Read-side settings (FULL_TABLE unless told)."""
    return StreamSettings(stream=stream, **kw)


def ws(stream: str = "t", **kw: Any) -> StreamSettings:
    """Write-side settings: append/upsert (INCREMENTAL) unless told FULL_TABLE."""
    kw.setdefault("replication_method", INCREMENTAL)
    return StreamSettings(stream=stream, **kw)


def all_types_batch() -> pa.RecordBatch:
    """One column per Arrow type of the conventions, with NULLs in every column."""
    schema = pa.schema(
        [
            pa.field("i", pa.int64()),
            pa.field("f", pa.float64()),
            pa.field("d", pa.decimal128(12, 2)),
            pa.field("b", pa.bool_()),
            pa.field("tz", pa.timestamp("us", tz="UTC")),
            pa.field("naive", pa.timestamp("us")),
            pa.field("day", pa.date32()),
            pa.field("s", pa.string()),
            pa.field("j", pa.string(), metadata={LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}),
            pa.field("li", pa.list_(pa.int64())),
            pa.field("ls", pa.list_(pa.string())),
        ]
    )
    return pa.RecordBatch.from_pylist(
        [
            {
                "i": -(2**62),
                "f": 1.25,
                "d": decimal.Decimal("1234567890.12"),
                "b": True,
                "tz": dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
                "naive": dt.datetime(1999, 12, 31, 1, 2, 3),
                "day": dt.date(2024, 2, 29),
                "s": 'say "hi" \u201cquoted\u201d \U0001f600 it\'s',
                "j": '{"a": [1, 2], "b": "\u00e9"}',
                "li": [1, None, 3],
                "ls": ["a", "\U0001f600", ""],
            },
            {k: None for k in schema.names},
            {
                "i": 0,
                "f": -0.5,
                "d": decimal.Decimal("-0.01"),
                "b": False,
                "tz": dt.datetime(1970, 1, 1, tzinfo=UTC),
                "naive": dt.datetime(2024, 1, 1, 0, 0, 0, 1),
                "day": dt.date(1900, 1, 1),
                "s": "",
                "j": "[]",
                "li": [],
                "ls": [],
            },
        ],
        schema=schema,
    )


def rows_of(reader: pa.RecordBatchReader) -> list[dict[str, Any]]:
    return reader.read_all().to_pylist()


class ContractCases:
    """Behaviours every embedded transactional SQL connector must show.

    A subclass supplies ``source``/``destination`` factories and ``query`` (raw
    SQL on the file, returning tuples) plus ``hold_lock`` (a real process holding
    the file).
    """

    ext = ""
    spec_name = ""

    @pytest.fixture
    def db(self, tmp_path: Path) -> Path:
        return tmp_path / f"warehouse{self.ext}"

    def destination(self, path: Path, **config: Any):
        raise NotImplementedError

    def source(self, path: Path, **config: Any):
        raise NotImplementedError

    def query(self, path: Path, sql: str) -> list[tuple]:
        raise NotImplementedError

    def hold_lock_code(self, path: Path) -> str:
        raise NotImplementedError

    def write(self, path: Path, s: StreamSettings, *batches: pa.RecordBatch, state_key: str | None = None, states=None, **cfg):
        dest = self.destination(path, **cfg)
        chunks = [Chunk(b, (states or [None] * len(batches))[i]) for i, b in enumerate(batches)]
        return dest.write(WriteRequest(s, batches[0].schema, state_key=state_key), chunks)

    # ---- registry

    def test_registered_under_its_name(self):
        spec = registry.get(self.spec_name)
        assert spec.source is type(self.source(Path("x")))
        assert spec.destination is type(self.destination(Path("x")))
        assert [f.name for f in spec.config_schema][0] == "path"
        assert spec.destination.transactional is True

    # ---- reading

    def test_read_selected_columns_in_table_order(self, db):
        self.write(db, ws(), batch(id=[1, 2, 3], name=["a", "b", "c"], score=[1.5, 2.5, None]))
        got = rows_of(self.source(db).read(ReadRequest(settings(columns=["score", "id"]))))
        assert sorted(got, key=lambda r: r["id"]) == [{"id": 1, "score": 1.5}, {"id": 2, "score": 2.5}, {"id": 3, "score": None}]
        with pytest.raises(ConfigError, match="'nope'"):
            self.source(db).read(ReadRequest(settings(columns=["id", "nope"])))

    def test_incremental_read_inclusive_ordered_by_bookmark_then_key(self, db):
        ts = [dt.datetime(2024, 1, d, tzinfo=UTC) for d in (3, 1, 2, 2, 3, 1)]
        self.write(db, ws(), batch(id=[6, 5, 4, 3, 2, 1], updated_at=ts, v=list("abcdef")))
        s = settings(replication_method=INCREMENTAL, bookmark_properties=["updated_at"], key_properties=["id"], columns=["v"])
        got = rows_of(self.source(db).read(ReadRequest(s, bookmark={"updated_at": "2024-01-02T00:00:00+00:00"}, batch_size=2)))
        # bookmark and key columns are always included; rows on the bound are kept
        assert [(r["updated_at"].day, r["id"]) for r in got] == [(2, 3), (2, 4), (3, 2), (3, 6)]
        assert [r["v"] for r in got] == ["d", "c", "e", "a"]
        everything = rows_of(self.source(db).read(ReadRequest(s, limit=3)))
        assert [(r["updated_at"].day, r["id"]) for r in everything] == [(1, 1), (1, 5), (2, 3)]

    def test_incremental_two_bookmark_columns_and_integer_bookmark(self, db):
        self.write(db, ws(), batch(id=[1, 2, 3, 4, 5], g=[1, 1, 2, 2, 3], seq=[5, 9, 1, 7, 0]))
        s = settings(replication_method=INCREMENTAL, bookmark_properties=["g", "seq"], key_properties=["id"])
        got = rows_of(self.source(db).read(ReadRequest(s, bookmark={"g": 1, "seq": 9})))
        assert [r["id"] for r in got] == [2, 3, 4, 5]
        got = rows_of(self.source(db).read(ReadRequest(s, bookmark={"g": 2, "seq": 2})))
        assert [r["id"] for r in got] == [4, 5]

    def test_incremental_missing_bookmark_or_key_column_is_named(self, db):
        self.write(db, ws(), batch(id=[1], v=["a"]))
        bad_bookmark = settings(replication_method=INCREMENTAL, bookmark_properties=["updated"], key_properties=["id"])
        with pytest.raises(ConfigError, match="bookmark column.*'updated'"):
            self.source(db).read(ReadRequest(bad_bookmark))
        bad_key = settings(replication_method=INCREMENTAL, bookmark_properties=["v"], key_properties=["pk"])
        with pytest.raises(ConfigError, match="key column.*'pk'"):
            self.source(db).read(ReadRequest(bad_key))

    def test_a_bookmark_column_that_cannot_be_ordered_is_refused_by_name(self, db):
        self.write(db, ws(), batch(id=[1, 2], flag=[True, False], v=["a", "b"]))
        by_flag = settings(replication_method=INCREMENTAL, bookmark_properties=["flag"], key_properties=["id"])
        with pytest.raises(ConfigError, match=r"bookmark column 'flag' \(BOOLEAN\) cannot be ordered") as err:
            self.source(db).read(ReadRequest(by_flag))
        assert err.value.stream == "t" and err.value.fix == "pick bookmark_properties among: id, v."

    def test_missing_table_and_missing_file(self, db, tmp_path):
        self.write(db, ws(), batch(id=[1]))
        with pytest.raises(ConfigError, match="'other'"):
            self.source(db).read(ReadRequest(settings("other")))
        missing = tmp_path / f"nothing{self.ext}"
        with pytest.raises(ConfigError, match=str(missing)):
            self.source(missing).discover()
        assert not missing.exists()

    # ---- writing

    def test_full_table_twice_keeps_exactly_the_rows(self, db):
        s = ws(replication_method=FULL_TABLE, unique_constraints=["id"])
        b = batch(id=[1, 2, 3], v=["a", "b", "c"])
        self.write(db, s, b)
        self.write(db, s, batch(id=[3, 1], v=["C", "A"]))
        assert self.query(db, 'SELECT id, v FROM "t" ORDER BY id') == [(1, "A"), (3, "C")]
        plain = ws("p", replication_method=FULL_TABLE)
        self.write(db, plain, b)
        self.write(db, plain, b)
        assert self.query(db, 'SELECT id, v FROM "p" ORDER BY id') == [(1, "a"), (2, "b"), (3, "c")]

    def test_append_without_keys(self, db):
        self.write(db, ws(), batch(id=[1, 2]))
        self.write(db, ws(), batch(id=[2]))
        assert self.query(db, 'SELECT id FROM "t" ORDER BY id') == [(1,), (2,), (2,)]

    def test_upsert_update_vs_ignore(self, db):
        self.write(db, ws(unique_constraints=["id"]), batch(id=[1, 2], v=["a", "b"], n=[1, 2]))
        # UPDATE: the new row wins, also within one batch (the last version)
        self.write(db, ws(unique_constraints=["id"]), batch(id=[2, 3, 2], v=["B", "c", "B2"], n=[20, 30, 21]))
        assert self.query(db, 'SELECT id, v, n FROM "t" ORDER BY id') == [(1, "a", 1), (2, "B2", 21), (3, "c", 30)]
        ignore = ws(unique_constraints=["id"], unique_conflict_method="IGNORE")
        self.write(db, ignore, batch(id=[1, 4, 4], v=["X", "d", "D"], n=[0, 4, 5]))
        assert self.query(db, 'SELECT id, v, n FROM "t" ORDER BY id') == [(1, "a", 1), (2, "B2", 21), (3, "c", 30), (4, "d", 4)]

    key_index = True
    """Whether upserts create/need a unique index on the keys (SQLite) or not (DuckDB)."""

    def test_upsert_on_existing_table_with_duplicate_keys(self, db):
        self.write(db, ws(), batch(id=[1, 2], v=["a", "b"]))
        self.write(db, ws(unique_constraints=["id"]), batch(id=[2], v=["B"]))
        assert self.query(db, 'SELECT id, v FROM "t" ORDER BY id') == [(1, "a"), (2, "B")]
        self.write(db, ws("dup"), batch(k=[1, 1, 2], v=["a", "b", "x"]))
        if self.key_index:  # the index cannot be created: the duplicates are named, nothing changes
            with pytest.raises(SchemaMismatch, match=r"unique index on \['k'\]") as err:
                self.write(db, ws("dup", unique_constraints=["k"]), batch(k=[1], v=["c"]))
            assert "duplicate" in str(err.value)
            assert self.query(db, 'SELECT k, v FROM "dup" ORDER BY v') == [(1, "a"), (1, "b"), (2, "x")]
        else:  # delete-insert: every row of the key is replaced by the new version
            self.write(db, ws("dup", unique_constraints=["k"]), batch(k=[1], v=["c"]))
            assert self.query(db, 'SELECT k, v FROM "dup" ORDER BY k') == [(1, "c"), (2, "x")]

    def test_auto_add_new_fields_on_and_off(self, db):
        self.write(db, ws(), batch(id=[1]))
        with pytest.raises(SchemaMismatch, match="'extra', 'More Stuff'") as err:
            self.write(db, ws(auto_add_new_fields=False), batch(id=[2], extra=["x"], **{"More Stuff": [1]}))
        assert "auto_add_new_fields" in str(err.value)
        assert self.query(db, 'SELECT id FROM "t"') == [(1,)]
        self.write(db, ws(), batch(id=[3], extra=["x"], **{"More Stuff": [7]}))
        assert self.query(db, 'SELECT id, extra, "More Stuff" FROM "t" ORDER BY id') == [(1, None, None), (3, "x", 7)]

    def test_columns_missing_from_the_batch_become_null(self, db):
        self.write(db, ws(), batch(id=[1], a=["x"], b=[1.5]))
        self.write(db, ws(), batch(id=[2], b=[2.5]))
        self.write(db, ws("t2", replication_method=FULL_TABLE), batch(id=[1], a=["x"]))
        self.write(db, ws("t2", replication_method=FULL_TABLE), batch(id=[9]))
        assert self.query(db, 'SELECT id, a, b FROM "t" ORDER BY id') == [(1, "x", 1.5), (2, None, 2.5)]
        assert self.query(db, 'SELECT id, a FROM "t2"') == [(9, None)]

    def test_state_committed_with_rows_and_callbacks(self, db):
        dest = self.destination(db)
        dest.commit_every_rows = 1
        commits: list[tuple[int, Any]] = []
        s = ws(unique_constraints=["id"])
        chunks = [Chunk(batch(id=[1, 2]), {"pos": 2}), Chunk(batch(id=[3]), {"pos": 3})]
        result = dest.write(WriteRequest(s, chunks[0].batch.schema, state_key="pipe/blk/t"), chunks, lambda n, st: commits.append((n, st)))
        assert (result.rows_written, result.state) == (3, {"pos": 3})
        assert commits == [(2, {"pos": 2}), (3, {"pos": 3})]
        assert dest.load_state("pipe/blk/t") == {"pos": 3}
        assert self.query(db, 'SELECT state_key FROM "_jupyter_di_state"') == [("pipe/blk/t",)]
        assert dest.load_state("other") is None
        dest.clear_state("pipe/blk/t")
        assert dest.load_state("pipe/blk/t") is None
        assert self.query(db, 'SELECT count(*) FROM "t"') == [(3,)]

    def test_failure_midway_keeps_old_rows_and_old_state(self, db):
        s = ws(replication_method=FULL_TABLE)
        self.write(db, s, batch(id=[1, 2], v=["old", "old"]), state_key="k", states=[{"v": "old"}])

        def chunks() -> Iterator[Chunk]:
            yield Chunk(batch(id=[7, 8, 9], v=["new"] * 3), {"v": "new"})
            raise RuntimeError("source died")

        dest = self.destination(db)
        dest.commit_every_rows = 1
        with pytest.raises(RuntimeError, match="source died"):
            dest.write(WriteRequest(s, batch(id=[1], v=["x"]).schema, state_key="k"), chunks())
        assert self.query(db, 'SELECT id, v FROM "t" ORDER BY id') == [(1, "old"), (2, "old")]
        assert dest.load_state("k") == {"v": "old"}

        # appends commit per window: what was committed stays, with its state
        a = ws("a")

        def append_chunks() -> Iterator[Chunk]:
            yield Chunk(batch(id=[1]), {"n": 1})
            yield Chunk(batch(id=[2]), {"n": 2})
            raise RuntimeError("source died")

        with pytest.raises(RuntimeError):
            dest.write(WriteRequest(a, batch(id=[1]).schema, state_key="a"), append_chunks())
        assert self.query(db, 'SELECT id FROM "a" ORDER BY id') == [(1,), (2,)]
        assert dest.load_state("a") == {"n": 2}

    def test_killed_writer_leaves_state_matching_rows(self, db):
        """SIGKILL at an arbitrary instant: the committed state always describes the committed rows."""
        module, cls = type(self.destination(db)).__module__, type(self.destination(db)).__name__
        code = f"""
import pyarrow as pa
from {module} import {cls} as D
from jupyter_di.connectors.base import Chunk, StreamSettings, WriteRequest
d = D({{"path": {str(db)!r}}})
d.commit_every_rows = 1
def chunks():
    i = 0
    while True:
        i += 1
        yield Chunk(pa.record_batch({{"id": pa.array(range(i * 1000, (i + 1) * 1000), pa.int64())}}), {{"n": i}})
d.write(WriteRequest(StreamSettings("t", replication_method="INCREMENTAL"), pa.schema([("id", pa.int64())]),
        state_key="k"), chunks(), lambda rows, state: print(state["n"], flush=True))
"""
        writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            for line in writer.stdout:
                if int(line) >= 5:
                    break
        finally:
            writer.kill()
            writer.wait(timeout=30)
        state = self.destination(db).load_state("k")
        assert state["n"] >= 5
        assert self.query(db, 'SELECT count(*), count(DISTINCT id) FROM "t"') == [(state["n"] * 1000, state["n"] * 1000)]

    def test_type_round_trip(self, db):
        b = all_types_batch()
        self.write(db, ws("types"), b)
        back = self.source(db).read(ReadRequest(settings("types")))
        table = back.read_all()
        for f in b.schema:
            assert table.schema.field(f.name).type == f.type, f.name
        assert table.schema.field("j").metadata == {LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}
        got, want = table.to_pylist(), b.to_pylist()
        for g, w in zip(got, want):
            if w["j"] is not None:
                assert json.loads(g.pop("j")) == json.loads(w.pop("j"))
        assert got == want

    def test_crafted_names_round_trip_as_literals(self, db):
        b = batch(**{EVIL: [1, 2], "Mixed Case": ["a", "b"], 'q"uote': [True, False]})
        self.write(db, ws(EVIL, unique_constraints=[EVIL]), b)
        self.write(db, ws(EVIL, unique_constraints=[EVIL]), batch(**{EVIL: [2], "Mixed Case": ["B"], 'q"uote': [None]}))
        catalog = self.source(db).discover()
        [entry] = [e for e in catalog["streams"] if e["tap_stream_id"] == EVIL]
        assert list(entry["schema"]["properties"]) == [EVIL, "Mixed Case", 'q"uote']
        assert entry["key_properties"] == ([EVIL] if self.key_index else [])  # DuckDB tables carry no key constraint
        got = rows_of(self.source(db).read(ReadRequest(settings(EVIL))))
        assert sorted(got, key=lambda r: r[EVIL]) == [
            {EVIL: 1, "Mixed Case": "a", 'q"uote': True},
            {EVIL: 2, "Mixed Case": "B", 'q"uote': None},
        ]
        assert "pwned" not in [e["tap_stream_id"] for e in catalog["streams"]]
        assert not [t for t in self.table_names(db) if t.lower() == "pwned"]

    def test_destination_folder_missing_is_config_error(self, tmp_path):
        path = tmp_path / "no" / "such" / f"db{self.ext}"
        with pytest.raises(ConfigError, match=str(path.parent)):
            self.write(path, ws(), batch(id=[1]))
        assert not path.parent.exists()

    def test_relative_path_resolves_against_working_directory(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        self.write(Path(f"rel{self.ext}"), ws(), batch(id=[1]))
        assert self.query(tmp_path / f"rel{self.ext}", 'SELECT id FROM "t"') == [(1,)]

    def test_locked_file_is_connection_failed(self, db):
        self.write(db, ws(), batch(id=[1]))
        holder = subprocess.Popen([sys.executable, "-c", self.hold_lock_code(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "ready"
            with pytest.raises(ConnectionFailed, match="locked") as err:
                self.write(db, ws(), batch(id=[2]), timeout=0.2)
            assert str(db) in str(err.value)
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
        assert self.query(db, 'SELECT id FROM "t"') == [(1,)]


class TestDuckDB(ContractCases):
    key_index = False

    def test_a_wide_table_loads_and_upserts_under_the_automatic_memory_limit(self, db):
        """150 text columns: with the former fixed 100 MB DuckDB fails ("failed to pin block", then the
        database is invalidated for the process); 'auto' gives it 2 MB per column."""

        def wide(ids: range) -> pa.RecordBatch:
            return pa.record_batch(
                {"id": pa.array(ids, pa.int64()), **{f"c{c}": pa.array([f"v{c}-{i}-{len(ids)}" for i in ids]) for c in range(150)}}
            )

        self.write(db, ws(), wide(range(0, 10_000)), wide(range(10_000, 20_000)))
        upsert = ws(replication_method=INCREMENTAL, key_properties=["id"], unique_constraints=["id"])
        self.write(db, upsert, wide(range(15_000, 25_000)))
        assert self.query(db, 'SELECT count(*), count(DISTINCT id), max(id) FROM "t"') == [(25_000, 25_000, 24_999)]
        assert self.query(db, 'SELECT c7 FROM "t" WHERE id IN (14999, 15000) ORDER BY id') == [("v7-14999-10000",), ("v7-15000-10000",)]

    def test_upserts_create_no_key_constraint_and_append_null_keys(self, db):
        self.write(db, ws(unique_constraints=["id"]), batch(id=[1, 2], v=["a", "b"]))
        assert self.query(
            db, "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 't' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        ) == [(0,)]
        self.write(db, ws("dup", unique_constraints=["k"]), batch(k=[1, 2], v=["c", "x"]))
        # NULL keys never match (as in a unique index): such rows are appended
        self.write(db, ws("dup", unique_constraints=["k"]), batch(k=pa.array([None, 2], pa.int64()), v=["n", "y"]))
        assert self.query(db, 'SELECT k, v FROM "dup" ORDER BY k NULLS LAST') == [(1, "c"), (2, "y"), (None, "n")]

    def test_upsert_keeps_columns_only_the_table_has_and_nulls_dropped_ones(self, db):
        self.write(db, ws(unique_constraints=["id"]), batch(id=[1, 2], v=["a", "b"], gone=[1, 2]))
        with duckdb.connect(str(db)) as con:
            con.execute('ALTER TABLE "t" ADD COLUMN note VARCHAR')
            con.execute("""UPDATE "t" SET note = 'mine' """)
        dest = self.destination(db)
        request = WriteRequest(ws(unique_constraints=["id"]), batch(id=[2], v=["B"]).schema, dropped_columns=["gone"])
        dest.write(request, [Chunk(batch(id=[2, 3], v=["B", "c"]))])
        assert self.query(db, 'SELECT id, v, gone, note FROM "t" ORDER BY id') == [
            (1, "a", 1, "mine"),
            (2, "B", None, "mine"),
            (3, "c", None, None),
        ]

    def test_a_table_with_a_primary_key_is_upserted_through_it(self, db):
        with duckdb.connect(str(db)) as con:
            con.execute('CREATE TABLE "t" (id BIGINT PRIMARY KEY, v VARCHAR)')
            con.execute("""INSERT INTO "t" VALUES (1, 'a'), (2, 'b')""")
        self.write(db, ws(unique_constraints=["id"]), batch(id=[2, 3, 2], v=["B", "c", "B2"]))
        assert self.query(db, 'SELECT id, v FROM "t" ORDER BY id') == [(1, "a"), (2, "B2"), (3, "c")]

    ext = ".duckdb"
    spec_name = "duckdb"

    def destination(self, path: Path, **config: Any) -> DuckDBDestination:
        config.pop("timeout", None)
        return DuckDBDestination({"path": str(path), **config})

    def source(self, path: Path, **config: Any) -> DuckDBSource:
        return DuckDBSource({"path": str(path), **config})

    def query(self, path: Path, sql: str) -> list[tuple]:
        with duckdb.connect(str(path)) as con:
            return [tuple(r) for r in con.execute(sql).fetchall()]

    def table_names(self, path: Path) -> list[str]:
        return [r[0] for r in self.query(path, "SELECT table_name FROM duckdb_tables()")]

    def hold_lock_code(self, path: Path) -> str:
        return f"import duckdb, sys\ncon = duckdb.connect({str(path)!r})\nprint('ready', flush=True)\nsys.stdin.read()\ncon.close()\n"

    def test_discover_tables_keys_types_schemas(self, db):
        with duckdb.connect(str(db)) as con:
            con.execute(
                'CREATE TABLE "Order Items" ("Id" BIGINT, line INTEGER, price DECIMAL(10,3), meta JSON, '
                'tags VARCHAR[], seen_at TIMESTAMPTZ, PRIMARY KEY ("Id", line))'
            )
            con.execute("CREATE SCHEMA staging")
            con.execute("CREATE TABLE staging.raw (x DOUBLE, flag BOOLEAN, d DATE)")
            con.execute('CREATE VIEW v AS SELECT "Id" FROM "Order Items"')
        catalog = self.source(db).discover()
        by_id = {e["tap_stream_id"]: e for e in catalog["streams"]}
        assert set(by_id) == {"Order Items", "staging.raw", "v"}
        items = by_id["Order Items"]
        assert items["key_properties"] == ["Id", "line"]
        assert items["schema"]["properties"]["price"] == {"type": ["null", "number"], "multipleOf": 0.001}
        assert items["schema"]["properties"]["tags"]["type"] == ["null", "array"]
        md = {tuple(m["breadcrumb"]): m["metadata"] for m in items["metadata"]}
        assert md[()]["valid-replication-keys"] == ["Id", "line", "price", "seen_at"]
        assert md[("properties", "meta")]["sql-datatype"] == "JSON"
        assert md[("properties", "seen_at")]["sql-datatype"] == "TIMESTAMP WITH TIME ZONE"
        only = self.source(db).discover(streams=["staging.raw"])
        assert [e["tap_stream_id"] for e in only["streams"]] == ["staging.raw"]
        with duckdb.connect(str(db)) as con:
            con.execute("INSERT INTO staging.raw VALUES (1.5, true, DATE '2024-01-02')")
        assert rows_of(self.source(db).read(ReadRequest(settings("staging.raw")))) == [{"x": 1.5, "flag": True, "d": dt.date(2024, 1, 2)}]

    def test_configured_schema_for_both_sides(self, db):
        dest = self.destination(db, schema="Raw Data")
        dest.write(WriteRequest(ws(), batch(id=[1]).schema, state_key="k"), [Chunk(batch(id=[1]), {"s": 1})])
        assert self.query(db, 'SELECT id FROM "Raw Data".t') == [(1,)]
        assert dest.load_state("k") == {"s": 1}
        assert [e["tap_stream_id"] for e in self.source(db, schema="Raw Data").discover()["streams"]] == ["t"]
        assert [e["tap_stream_id"] for e in self.source(db).discover()["streams"]] == ["Raw Data.t"]

    def test_source_reads_while_same_process_writes(self, db):
        self.write(db, ws(), batch(id=list(range(10))))
        reader = self.source(db).read(ReadRequest(settings(), batch_size=3))
        first = reader.read_next_batch()
        self.write(db, ws(), batch(id=[100]))
        rest = reader.read_all()
        assert first.num_rows + rest.num_rows == 10
        assert self.query(db, 'SELECT count(*) FROM "t"') == [(11,)]

    def test_mismatched_value_is_schema_mismatch(self, db):
        self.write(db, ws(), batch(id=[1]))
        with pytest.raises(SchemaMismatch, match="stream 't'.*do not fit"):
            self.write(db, ws(), batch(id=["not a number"]))
        assert self.query(db, 'SELECT id FROM "t"') == [(1,)]

    def test_many_batches_land_exactly(self, db):
        n = 50_000
        chunks = [Chunk(pa.record_batch({"id": pa.array(range(i * n, (i + 1) * n), pa.int64())}), {"i": i}) for i in range(6)]
        dest = self.destination(db)
        result = dest.write(WriteRequest(ws(unique_constraints=["id"]), chunks[0].batch.schema, state_key="k"), chunks)
        assert result.rows_written == 6 * n
        assert self.query(db, 'SELECT count(*), count(DISTINCT id), max(id) FROM "t"') == [(6 * n, 6 * n, 6 * n - 1)]
        assert dest.load_state("k") == {"i": 5}


def _full_table_write(path: Path, ids: list[int], chunk_rows: int = 2) -> None:
    dest = DuckDBDestination({"path": str(path)})
    rows = batch(id=pa.array(ids, pa.int64()), name=pa.array([f"n{i}" for i in ids]))
    chunks = [Chunk(rows.slice(i, chunk_rows)) for i in range(0, rows.num_rows, chunk_rows)]
    with dest:
        dest.write(WriteRequest(ws("t", replication_method="FULL_TABLE"), rows.schema), chunks)


def test_full_table_staging_swaps_in_and_falls_back_to_a_copy_when_a_view_depends(tmp_path):
    path = tmp_path / "w.duckdb"
    saved = DuckDBDestination.commit_every_rows
    DuckDBDestination.commit_every_rows = 2  # force several staging commits
    try:
        _full_table_write(path, [1, 2, 3, 4, 5])
        _full_table_write(path, [7, 8, 9])
        with duckdb.connect(str(path)) as con:
            assert con.execute('SELECT id, name FROM "t" ORDER BY id').fetchall() == [(7, "n7"), (8, "n8"), (9, "n9")]
            assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%staging%'").fetchone()[0] == 0
            con.execute('CREATE VIEW v AS SELECT id FROM "t"')
        _full_table_write(path, [10, 11])
        with duckdb.connect(str(path)) as con:
            assert con.execute("SELECT id FROM v ORDER BY id").fetchall() == [(10,), (11,)]
            assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%staging%'").fetchone()[0] == 0
    finally:
        DuckDBDestination.commit_every_rows = saved


def test_full_table_load_while_a_reader_of_the_same_file_is_open(tmp_path):
    """A source block reading the file this destination writes (streaming hand-off): the checkpoint
    after each staging window cannot run then, and is skipped instead of failing the load."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE src AS SELECT range AS id FROM range(10)")
    reader_con = duckdb.connect(str(path))
    try:
        reading = reader_con.sql("SELECT * FROM src").to_arrow_reader(2)
        next(iter(reading))  # a read transaction stays open
        saved = DuckDBDestination.commit_every_rows
        DuckDBDestination.commit_every_rows = 2
        try:
            _full_table_write(path, [1, 2, 3, 4, 5])
        finally:
            DuckDBDestination.commit_every_rows = saved
        assert next(iter(reading)).num_rows == 2  # the reader carries on
        reading.close()  # before its connection (DuckDB 1.5 waits for a reader left open when the file reopens)
    finally:
        reader_con.close()
    with duckdb.connect(str(path)) as con:
        assert con.execute('SELECT id FROM "t" ORDER BY id').fetchall() == [(1,), (2,), (3,), (4,), (5,)]


@pytest.mark.parametrize("leftover", [b"", b"\0" * 5000, "header"], ids=["empty", "zeros", "header-short"])
def test_a_file_left_by_a_killed_creation_is_replaced_and_the_next_write_succeeds(tmp_path, leftover, caplog):
    """A kill -9 while DuckDB created the file left an empty or header-short file every later run failed on."""
    path = tmp_path / "w.duckdb"
    if leftover == "header":
        with duckdb.connect(str(tmp_path / "real.duckdb")):
            pass
        leftover = (tmp_path / "real.duckdb").read_bytes()[: 4096 + 100]
    path.write_bytes(leftover)
    with caplog.at_level("WARNING", logger="jupyter_di.connectors.duckdb.connection"):
        _full_table_write(path, [1, 2, 3])
    assert "shorter than DuckDB's headers" in caplog.text and str(path) in caplog.text
    with duckdb.connect(str(path)) as con:
        assert con.execute('SELECT id, name FROM "t" ORDER BY id').fetchall() == [(1, "n1"), (2, "n2"), (3, "n3")]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_a_short_file_that_is_not_a_database_being_created_is_never_replaced(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_bytes(b"my own notes, not a database\n")
    with pytest.raises(ConnectionFailed, match="not a valid DuckDB database file"):
        _full_table_write(path, [1])
    assert path.read_bytes() == b"my own notes, not a database\n"


def test_a_new_file_appears_only_once_initialised(tmp_path, monkeypatch):
    """The new file is made under a temporary name and linked into place: killed before that, no file."""
    from jupyter_di.connectors.duckdb import connection

    path = tmp_path / "w.duckdb"
    seen: list[bool] = []
    original = connection._publish

    def publish(temp: str, target: str) -> None:
        seen.append(os.path.exists(target))
        with duckdb.connect(temp) as con:  # the temporary file is already a database
            assert con.execute("SELECT 1").fetchall() == [(1,)]
        original(temp, target)

    monkeypatch.setattr(connection, "_publish", publish)
    _full_table_write(path, [4])
    assert seen == [False]
    with duckdb.connect(str(path)) as con:
        assert con.execute('SELECT id FROM "t"').fetchall() == [(4,)]


def test_an_upsert_window_larger_than_the_memory_limit_spills_and_keeps_each_keys_last_row(tmp_path):
    """INCREMENTAL into DuckDB: an upsert window picked one row per key with a window function, which
    ran out of the 100MB memory_limit at ~850k changed rows (benchmarks/cdc.py); here at 32MB."""
    path = tmp_path / "w.duckdb"
    config = {"path": str(path), "memory_limit": "32MB"}

    def rows(ids: range, tag: str) -> pa.RecordBatch:
        return batch(
            id=pa.array(ids, pa.int64()),
            status=pa.array([f"{tag}-{i}" for i in ids]),
            note=pa.array([f"a longer text that makes the window bigger than its limit {tag} {i}" for i in ids]),
        )

    s = ws("t", unique_constraints=["id"])
    base = rows(range(0, 400_000), "a")
    with DuckDBDestination(config) as dest:
        dest.write(WriteRequest(s, base.schema, state_key="k"), [Chunk(base.slice(i, 50_000)) for i in range(0, 400_000, 50_000)])
    # one window of 600k rows: 200k keys updated, 300k new, and 100k of them twice (their second row wins)
    first, second = rows(range(200_000, 700_000), "b"), rows(range(300_000, 400_000), "c")
    chunks = [Chunk(first.slice(i, 50_000)) for i in range(0, first.num_rows, 50_000)] + [Chunk(second, {"done": 1})]
    with DuckDBDestination(config) as dest:
        dest.change_window_rows = 1_000_000  # a table with rows is otherwise upserted in 50k-row windows
        dest.write(WriteRequest(s, first.schema, state_key="k"), chunks)
        assert dest.load_state("k") == {"done": 1}
    with duckdb.connect(str(path)) as con:
        assert con.execute('SELECT count(*), count(DISTINCT id), min(id), max(id) FROM "t"').fetchall() == [(700_000, 700_000, 0, 699_999)]
        got = dict(con.execute('SELECT left(status, 1), count(*) FROM "t" GROUP BY 1').fetchall())
        assert got == {"a": 200_000, "b": 400_000, "c": 100_000}
        assert con.execute('SELECT status, note FROM "t" WHERE id = 399999').fetchall() == [
            ("c-399999", "a longer text that makes the window bigger than its limit c 399999")
        ]


def test_upserts_into_a_table_with_rows_commit_in_change_windows_and_a_first_sync_in_large_ones(tmp_path):
    """A 1M-row upsert window into a 5M-row table peaked at 388-390 MB (benchmarks/cdc.py, INCREMENTAL):
    a table that has rows is upserted in windows of ``change_window_rows``; an empty one (a first sync)
    keeps ``commit_every_rows``. A key in two windows ends with its last row."""
    path = tmp_path / "u.duckdb"
    s = ws("t", unique_constraints=["id"])
    commits: list[int] = []

    def write(ids: list[int], tag: str) -> None:
        chunks = [Chunk(batch(id=[i], v=[f"{tag}{n}"]), {"n": n}) for n, i in enumerate(ids)]
        with DuckDBDestination({"path": str(path)}) as dest:
            dest.change_window_rows = 2
            dest.write(WriteRequest(s, chunks[0].batch.schema, state_key="k"), chunks, lambda rows, _: commits.append(rows))
            assert dest.load_state("k") == {"n": len(ids) - 1}

    write([1, 2, 3, 4, 5], "a")
    assert commits == [5]  # one window
    commits.clear()
    write([2, 6, 2, 7, 3], "b")
    assert commits == [2, 4, 5]  # windows of 2 rows
    with duckdb.connect(str(path)) as con:
        assert con.execute('SELECT id, v FROM "t" ORDER BY id').fetchall() == [
            (1, "a0"),
            (2, "b2"),
            (3, "b4"),
            (4, "a3"),
            (5, "a4"),
            (6, "b1"),
            (7, "b3"),
        ]


def test_a_full_table_load_without_keys_inserts_in_any_order_and_keyed_loads_keep_load_order(tmp_path, monkeypatch):
    """FULL_TABLE without unique_constraints has no row order to keep, so its connection inserts with
    ``preserve_insertion_order`` off (DuckDB then fills row groups on all its threads); only that
    connection: another one to the same file (a notebook's) keeps the default; its automatic memory
    limit is 64MB (measured: less peak RSS, as fast).  A keyed load keeps the order: its last row per
    key must win."""
    from jupyter_di.connectors.duckdb import write as duckdb_write

    path = tmp_path / "o.duckdb"
    seen: list[bool] = []
    real = duckdb_write.DuckDBDestination._insert_stream

    def recording(self, con, table, window):
        seen.append(con.execute("SELECT current_setting('preserve_insertion_order'), current_setting('memory_limit')").fetchall()[0])
        real(self, con, table, window)

    monkeypatch.setattr(duckdb_write.DuckDBDestination, "_insert_stream", recording)
    notebook = duckdb.connect(str(path))  # the same DuckDB instance as the destination's connections
    try:
        rows = [
            batch(id=pa.array(range(i, i + 50_000), pa.int64()), v=pa.array([f"v{n}" for n in range(i, i + 50_000)])) for i in (0, 50_000)
        ]
        with DuckDBDestination({"path": str(path)}) as dest:
            dest.write(WriteRequest(ws(replication_method=FULL_TABLE), rows[0].schema, state_key="k"), [Chunk(b) for b in rows])
        assert notebook.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0] is True
        assert notebook.execute('SELECT count(*), count(DISTINCT id), min(id), max(id) FROM "t"').fetchall() == [
            (100_000, 100_000, 0, 99_999)
        ]
        assert notebook.execute("SELECT v FROM t WHERE id = 77777").fetchall() == [("v77777",)]
        dup = batch(id=pa.array([1, 2, 1], pa.int64()), v=pa.array(["first", "x", "last"]))
        with DuckDBDestination({"path": str(path)}) as dest:
            dest.write(WriteRequest(ws("k", replication_method=FULL_TABLE, unique_constraints=["id"]), dup.schema), [Chunk(dup)])
        assert notebook.execute('SELECT id, v FROM "k" ORDER BY id').fetchall() == [(1, "last"), (2, "x")]
    finally:
        notebook.close()
    assert seen == [(False, "61.0 MiB"), (True, "95.3 MiB")]  # automatic limits: 64MB and 100MB


def test_a_change_window_of_random_keys_fits_a_table_larger_than_the_automatic_limit(tmp_path, monkeypatch):
    """A delete pins 16 KB of version information for every 2,048-row vector it touches (issue 18):
    random keys in a 2M-row table pin ~16 MB, more than an automatic limit of 16MB leaves, so the
    automatic limit grows with the table's rows (``VERSION_INFO_BYTES_PER_ROW``)."""
    import random

    from jupyter_di.connectors.base import CHANGE_OP_COLUMN, CHANGE_TIME_COLUMN, CHANGE_UNCHANGED_COLUMN, change_fields
    from jupyter_di.connectors.duckdb import write as duckdb_write

    path = tmp_path / "big.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT i AS id, 'old' AS v FROM range(2000000) r(i)")
    monkeypatch.setattr(duckdb_write, "WRITE_MEMORY_LIMIT", "16MB")
    keys = random.Random(18).sample(range(2_000_000), 20_000)
    changed = pa.table({"id": pa.array(keys, pa.int64()), "v": pa.array(["new"] * len(keys))})
    deleted = keys[:2000]
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("v", pa.string()), *change_fields()])
    ops = ["update"] * len(keys) + ["delete"] * len(deleted)
    when = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    rows = pa.table(
        {
            "id": pa.array(keys + deleted, pa.int64()),
            "v": pa.concat_arrays([changed.column("v").combine_chunks(), pa.nulls(len(deleted), pa.string())]),
            CHANGE_OP_COLUMN: pa.array(ops),
            CHANGE_TIME_COLUMN: pa.array([when] * len(ops), schema.field(CHANGE_TIME_COLUMN).type),
            CHANGE_UNCHANGED_COLUMN: pa.nulls(len(ops), schema.field(CHANGE_UNCHANGED_COLUMN).type),
        },
        schema=schema,
    )
    s = StreamSettings(stream="t", replication_method="LOG_BASED", unique_constraints=["id"], delete_mode="hard")
    dest = DuckDBDestination({"path": str(path)})
    dest.write(WriteRequest(s, schema), [Chunk(b, None) for b in rows.to_batches(max_chunksize=10_000)])
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*), count(*) FILTER (WHERE v = 'new') FROM t").fetchone() == (2_000_000 - 2000, 18_000)
        assert con.execute("SELECT count(*) FROM t WHERE id IN (SELECT unnest(?))", [deleted]).fetchone() == (0,)
