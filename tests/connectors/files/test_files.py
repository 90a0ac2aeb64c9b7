"""The files connector against real files in a temp folder: read, write, modes, safety."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jupyter_di.connectors.base import JSON_LOGICAL_TYPE, LOGICAL_TYPE_KEY, Chunk, ReadRequest, StreamSettings, WriteRequest
from jupyter_di.connectors.files import SPEC, FilesDestination, FilesSource
from jupyter_di.errors import ConfigError, SchemaMismatch
from tests.support.streams import read_stream

UTC = timezone.utc
FORMATS = ["csv", "jsonl", "parquet"]


def people_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("name", pa.string()),
            pa.field("score", pa.float64()),
            pa.field("updated_at", pa.timestamp("us", tz="UTC")),
            pa.field("meta", pa.string(), metadata={LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}),
        ]
    )


def people(ids, *, suffix="") -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [
            {
                "id": i,
                "name": f"p{i}{suffix}",
                "score": i / 2,
                "updated_at": datetime(2024, 1, 1 + (i % 5), 12, tzinfo=UTC),
                "meta": json.dumps({"tags": ["a", i], "n": {"x": i}}),
            }
            for i in ids
        ],
        schema=people_schema(),
    )


def write(folder, fmt, batches, *, mode="FULL_TABLE", table="people", unique=(), method="UPDATE", states=None, **cfg):
    dest = FilesDestination({"path": str(folder), "format": fmt, **cfg})
    settings = StreamSettings(stream=table, replication_method=mode, unique_constraints=list(unique), unique_conflict_method=method)
    commits = []
    chunks = [Chunk(b, (states or {}).get(i)) for i, b in enumerate(batches)]
    result = dest.write(WriteRequest(settings, batches[0].schema), chunks, lambda n, s: commits.append((n, s)))
    return result, commits


def read(folder, fmt, stream="people", **kw):
    cfg = {"path": str(folder), "format": fmt}
    cfg.update(kw.pop("config", {}))
    return read_stream(FilesSource(cfg), stream, **kw)


@pytest.mark.parametrize("fmt", FORMATS)
def test_discover_and_read_each_format(tmp_path, fmt):
    write(tmp_path, fmt, [people(range(1, 6))])
    catalog = FilesSource({"path": str(tmp_path), "format": fmt}).discover()
    [entry] = catalog["streams"]
    assert entry["tap_stream_id"] == "people"
    assert list(entry["schema"]["properties"]) == ["id", "name", "score", "updated_at", "meta"]
    assert entry["schema"]["properties"]["id"]["type"] == ["null", "integer"]
    assert entry["schema"]["properties"]["updated_at"]["format"] == "date-time"
    md = entry["metadata"][0]["metadata"]
    assert "updated_at" in md["valid-replication-keys"] and "id" in md["valid-replication-keys"]

    table = read(tmp_path, fmt, batch_size=2)
    assert table.num_rows == 5
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("name").to_pylist() == [f"p{i}" for i in range(1, 6)]
    assert table.column("score").to_pylist() == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert table.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("updated_at")[0].as_py() == datetime(2024, 1, 2, 12, tzinfo=UTC)
    assert json.loads(table.column("meta")[2].as_py()) == {"tags": ["a", 3], "n": {"x": 3}}
    if fmt != "csv":  # a CSV cannot say a text column holds JSON
        assert table.schema.field("meta").metadata[LOGICAL_TYPE_KEY] == JSON_LOGICAL_TYPE


@pytest.mark.parametrize("fmt", FORMATS)
def test_selected_columns_keep_stream_order_and_limit(tmp_path, fmt):
    write(tmp_path, fmt, [people(range(1, 11))])
    table = read(tmp_path, fmt, columns=["name", "id"], limit=3, batch_size=2)
    assert table.schema.names == ["id", "name"]
    assert table.to_pylist() == [{"id": 1, "name": "p1"}, {"id": 2, "name": "p2"}, {"id": 3, "name": "p3"}]
    with pytest.raises(ConfigError, match="'nope'"):
        read(tmp_path, fmt, columns=["id", "nope"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_incremental_read_filters_inclusively_and_orders(tmp_path, fmt):
    write(tmp_path, fmt, [people([7, 3, 9, 1, 4, 8, 2, 6, 5, 0])])
    table = read(
        tmp_path,
        fmt,
        method="INCREMENTAL",
        bookmark_properties=["updated_at"],
        key_properties=["id"],
        bookmark={"updated_at": "2024-01-03T12:00:00+00:00"},
        columns=["id", "updated_at"],
    )
    # day = 1 + id % 5 >= 3  <=>  id % 5 in (2, 3, 4); ordered by (updated_at, id)
    assert table.column("id").to_pylist() == [2, 7, 3, 8, 4, 9]
    with pytest.raises(ConfigError, match="bookmark column 'missing'"):
        read(tmp_path, fmt, method="INCREMENTAL", bookmark_properties=["missing"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_full_table_twice_is_exact_and_atomic(tmp_path, fmt):
    result, commits = write(tmp_path, fmt, [people(range(3)), people(range(3, 5))], states={1: {"v": 1}})
    assert result.rows_written == 5 and commits == [(5, {"v": 1})]
    write(tmp_path, fmt, [people(range(10, 13))])
    assert read(tmp_path, fmt).column("id").to_pylist() == [10, 11, 12]
    assert sorted(os.listdir(tmp_path)) == [f"people.{fmt}"]  # no temp files left

    def broken():
        yield Chunk(people([99]))
        raise RuntimeError("source died")

    dest = FilesDestination({"path": str(tmp_path), "format": fmt})
    with pytest.raises(RuntimeError):
        dest.write(WriteRequest(StreamSettings("people"), people_schema()), broken())
    assert read(tmp_path, fmt).column("id").to_pylist() == [10, 11, 12]
    assert sorted(os.listdir(tmp_path)) == [f"people.{fmt}"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_append_commits_each_chunk(tmp_path, fmt):
    write(tmp_path, fmt, [people([1, 2])], mode="INCREMENTAL")
    result, commits = write(tmp_path, fmt, [people([3]), people([4, 5])], mode="INCREMENTAL", states={0: {"b": 3}, 1: {"b": 5}})
    assert result.rows_written == 3
    if fmt == "parquet":  # rewrite + replace: one commit
        assert commits == [(3, {"b": 5})]
    else:
        assert commits == [(1, {"b": 3}), (3, {"b": 5})]
    table = read(tmp_path, fmt)
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("name").to_pylist() == ["p1", "p2", "p3", "p4", "p5"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_append_new_column_added_or_rejected(tmp_path, fmt):
    write(tmp_path, fmt, [people([1])], mode="INCREMENTAL")
    wider = people([2]).append_column("extra", pa.array(["x"]))
    write(tmp_path, fmt, [wider], mode="INCREMENTAL")
    table = read(tmp_path, fmt)
    assert table.schema.names[-1] == "extra"
    assert table.select(["id", "extra"]).to_pylist() == [{"id": 1, "extra": None}, {"id": 2, "extra": "x"}]

    dest = FilesDestination({"path": str(tmp_path), "format": fmt})
    settings = StreamSettings("people", replication_method="INCREMENTAL", auto_add_new_fields=False)
    wider2 = wider.append_column("more", pa.array([1]))
    with pytest.raises(SchemaMismatch, match="'more'"):
        dest.write(WriteRequest(settings, wider2.schema), [Chunk(wider2)])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("method", ["UPDATE", "IGNORE"])
def test_upsert(tmp_path, fmt, method):
    write(tmp_path, fmt, [people([1, 2, 3])], mode="INCREMENTAL", unique=["id"], method=method)
    _, commits = write(
        tmp_path,
        fmt,
        [people([2, 4], suffix="-new"), people([4], suffix="-newer")],
        mode="INCREMENTAL",
        unique=["id"],
        method=method,
        states={1: {"b": 4}},
    )
    assert commits == [(3, {"b": 4})]
    got = {r["id"]: r["name"] for r in read(tmp_path, fmt).to_pylist()}
    if method == "UPDATE":
        assert got == {1: "p1", 2: "p2-new", 3: "p3", 4: "p4-newer"}
    else:
        assert got == {1: "p1", 2: "p2", 3: "p3", 4: "p4-new"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["../escaped", "a/b", "/tmp/abs_escaped", "..", "x\x00y", "a\\b"])
def test_path_traversal_rejected(tmp_path, fmt, name):
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(ConfigError, match="not a plain file name"):
        write(root, fmt, [people([1])], table=name)
    with pytest.raises(ConfigError, match="not a plain file name"):
        read(root, fmt, stream=name)
    assert list(tmp_path.rglob("*")) == [root]
    assert not os.path.exists(f"/tmp/abs_escaped.{fmt}")


def test_symlink_out_of_folder_rejected(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "link.csv").symlink_to(tmp_path / "outside.csv")
    with pytest.raises(ConfigError, match="not a plain file name"):
        write(root, "csv", [people([1])], table="link")
    assert not (tmp_path / "outside.csv").exists()


def test_csv_unicode_quotes_newlines_and_options(tmp_path):
    values = ["plain", 'with "quotes"', "multi\nline\r\nvalue", "comma, semi; tab\t", "ünïcødé — 日本語 🎉", ""]
    batch = pa.RecordBatch.from_pylist([{"id": i, "text": v} for i, v in enumerate(values)])
    for cfg in ({}, {"delimiter": ";"}, {"delimiter": "\t", "header": False}):
        folder = tmp_path / str(len(cfg))
        write(folder, "csv", [batch], **cfg)
        table = read(folder, "csv", config=cfg)
        if cfg.get("header") is False:
            assert table.schema.names == ["f0", "f1"]
            assert table.column("f1").to_pylist() == values
        else:
            assert table.column("text").to_pylist() == values
            assert table.column("id").to_pylist() == list(range(len(values)))
    assert ";" in (tmp_path / "1" / "people.csv").read_text(encoding="utf-8").splitlines()[0]


def test_jsonl_nested_json_and_csv_text(tmp_path):
    write(tmp_path, "jsonl", [people([1])])
    line = json.loads((tmp_path / "people.jsonl").read_text(encoding="utf-8"))
    assert line["meta"] == {"tags": ["a", 1], "n": {"x": 1}}  # nested, not a string
    assert line["updated_at"] == "2024-01-02T12:00:00+00:00"
    write(tmp_path, "csv", [people([1])])
    text = (tmp_path / "people.csv").read_text(encoding="utf-8")
    assert '"{""tags"": [""a"", 1], ""n"": {""x"": 1}}"' in text


def test_empty_stream_and_missing_file(tmp_path):
    write(tmp_path, "parquet", [people([]).slice(0, 0)])
    table = read(tmp_path, "parquet")
    assert table.num_rows == 0 and table.schema.names == people_schema().names
    with pytest.raises(ConfigError, match="no file 'other.parquet'"):
        read(tmp_path, "parquet", stream="other")
    with pytest.raises(ConfigError, match="does not exist"):
        FilesSource({"path": str(tmp_path / "nope"), "format": "csv"}).discover()


@pytest.mark.parametrize("src_fmt", FORMATS)
@pytest.mark.parametrize("dst_fmt", FORMATS)
def test_round_trip_across_formats(tmp_path, src_fmt, dst_fmt):
    a, b = tmp_path / "a", tmp_path / "b"
    original = people(range(6))
    write(a, src_fmt, [original])
    reader = FilesSource({"path": str(a), "format": src_fmt}).read(ReadRequest(StreamSettings("people"), batch_size=4))
    FilesDestination({"path": str(b), "format": dst_fmt}).write(
        WriteRequest(StreamSettings("people"), reader.schema), (Chunk(x) for x in reader)
    )
    back = read(b, dst_fmt)
    assert (
        back.select(["id", "name", "score", "updated_at"]).to_pylist()
        == pa.Table.from_batches([original]).select(["id", "name", "score", "updated_at"]).to_pylist()
    )
    assert [json.loads(v) for v in back.column("meta").to_pylist()] == [{"tags": ["a", i], "n": {"x": i}} for i in range(6)]


def test_decimal_and_date_survive_parquet_and_jsonl(tmp_path):
    batch = pa.RecordBatch.from_pylist(
        [{"id": 1, "amount": Decimal("12.50"), "day": datetime(2024, 3, 1).date()}],
        schema=pa.schema([("id", pa.int64()), ("amount", pa.decimal128(10, 2)), ("day", pa.date32())]),
    )
    write(tmp_path, "parquet", [batch])
    assert read(tmp_path, "parquet").to_pylist() == batch.to_pylist()
    write(tmp_path, "jsonl", [batch])
    got = read(tmp_path, "jsonl").to_pylist()
    assert got == [{"id": 1, "amount": "12.50", "day": datetime(2024, 3, 1).date()}]


def test_spec():
    assert SPEC.name == "files" and SPEC.source is FilesSource and SPEC.destination is FilesDestination
    assert FilesDestination.transactional is False


def test_upsert_key_must_exist_and_csv_without_trailing_newline(tmp_path):
    with pytest.raises(ConfigError, match="unique constraint column 'sku'"):
        write(tmp_path, "jsonl", [people([1])], unique=["sku"])
    assert not (tmp_path / "people.jsonl").exists()
    (tmp_path / "people.csv").write_text("id,name\n1,a", encoding="utf-8")  # hand-made, no final newline
    batch = pa.RecordBatch.from_pylist([{"id": 2, "name": "b"}])
    write(tmp_path, "csv", [batch], mode="INCREMENTAL")
    assert read(tmp_path, "csv").to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_a_bookmark_column_that_cannot_be_ordered_is_refused_by_name(tmp_path):
    pq.write_table(pa.table({"id": [1, 2], "tags": [[1], [2, 3]], "at": ["2024-01-01", "2024-01-02"]}), tmp_path / "people.parquet")
    with pytest.raises(ConfigError, match=r"bookmark column 'tags' \(list<element: int64>\) cannot be ordered") as err:
        read(tmp_path, "parquet", method="INCREMENTAL", bookmark_properties=["tags"], key_properties=["id"])
    assert err.value.stream == "people" and err.value.fix == "pick bookmark_properties among: id, at."
