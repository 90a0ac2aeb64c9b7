"""The trino destination against a real Trino server (tests/support/trino_server.py: Trino 476 from Maven
Central, an Iceberg catalog on local files and a memory catalog).

Rows are always read back through Trino and compared: every column type, FULL_TABLE reruns, MERGE
upserts with ties at the bookmark (a real PostgreSQL source through ``jupyter-di run``), hostile
identifiers, kill -9 mid-load then resume, and the memory catalog's MERGE error.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pyarrow as pa
import pytest

from jupyter_di.connectors.base import Chunk, StreamSettings, WriteRequest, json_field
from jupyter_di.connectors.trino import TrinoDestination
from jupyter_di.errors import ConfigError, ConnectionFailed, SchemaMismatch
from jupyter_di.state.api import get_bookmark
from tests.support.orders import create_orders, differences, iso_epoch, mutate, source_max_epoch, source_rows

REPO = Path(__file__).resolve().parents[3]
KILL_POINTS = REPO / "tests" / "support" / "kill_points.py"


@pytest.fixture
def trino_config(trino_server):
    """A config for a fresh (not yet created) schema in the MERGE-capable catalog."""
    return {
        "host": trino_server["host"],
        "port": trino_server["port"],
        "user": trino_server["user"],
        "catalog": trino_server["catalog"],
        "schema": "t_" + uuid.uuid4().hex[:10],
        "max_statement_bytes": 20_000,  # many statements, several in flight, even for small tests
    }


def staged(config: dict, trino_server: dict, path: str = "files") -> dict:
    """``config`` with the Parquet file path on. ``files``: files under the server's lake/staging folder,
    read by its ``hive`` catalog (which names that folder local:///staging); ``s3``: files in the S3
    stand-in's bucket (moto), written by pyarrow (``s3_credentials``) and read by its ``hive_s3`` catalog."""
    if path == "s3":
        return config | {
            "staging_location": f"s3://{trino_server['s3_bucket']}/staging",
            "staging_catalog": trino_server["staging_s3_catalog"],
        }
    return config | {
        "staging_location": trino_server["staging_location"],
        "staging_server_location": trino_server["staging_server_location"],
        "staging_catalog": trino_server["staging_catalog"],
    }


def with_path(config: dict, trino_server: dict, path: str) -> dict:
    """``config`` for the load path under test: SQL statements (``sql``) or Parquet files staged locally or on S3."""
    return config if path == "sql" else staged(config, trino_server, path)


@pytest.fixture(autouse=True)
def s3_credentials(trino_server, monkeypatch):
    """This process reaches the S3 stand-in as pyarrow reaches any S3: endpoint, region and (dummy) keys
    from the environment, never from the block's config; ``jupyter-di run`` subprocesses inherit them."""
    from tests.support.trino_server import S3_KEYS, S3_REGION

    for name, value in {
        "AWS_ENDPOINT_URL": trino_server["s3_endpoint"],
        "AWS_REGION": S3_REGION,
        "AWS_ACCESS_KEY_ID": S3_KEYS[0],
        "AWS_SECRET_ACCESS_KEY": S3_KEYS[1],
    }.items():
        monkeypatch.setenv(name, value)


def staging_files(trino_server: dict, config: dict) -> list[str]:
    """Every folder and file under the config's staging location (local or on S3), relative to it."""
    import pyarrow.fs as pafs

    location = config.get("staging_location", trino_server["staging_location"])
    fs, root = pafs.FileSystem.from_uri(location) if "://" in location else (pafs.LocalFileSystem(), location)
    found = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=True))
    return sorted(i.path[len(root) + 1 :] for i in found)


def staging_leftovers(query, trino_server: dict, config: dict, table: str = "t") -> list[str]:
    """What the Parquet path left for ``table``: folders (objects, on S3) under the staging location, and
    external tables in the staging catalog."""
    from jupyter_di.connectors.base import internal_name

    prefix = internal_name("stage", config["catalog"], config["schema"], table)
    files = [name for name in staging_files(trino_server, config) if name.startswith(prefix)]
    catalog = config.get("staging_catalog", trino_server["staging_catalog"])
    tables = query(f'SELECT table_name FROM "{catalog}".information_schema.tables WHERE table_schema = ?', [config["schema"]])
    return files + [r[0] for r in tables]


@pytest.fixture
def query(trino_server):
    import trino

    conn = trino.dbapi.connect(host=trino_server["host"], port=trino_server["port"], user="reader")

    def run(sql: str, params: list | None = None) -> list[list]:
        cur = conn.cursor()
        cur.execute(sql, params) if params is not None else cur.execute(sql)
        return cur.fetchall()

    yield run
    conn.close()


def write(config: dict, batches: list[pa.RecordBatch], *, table: str = "t", states: list | None = None, **settings) -> list:
    commits: list = []
    s = StreamSettings(stream="s", destination_table=table, **settings)
    chunks = [Chunk(b, (states or [None] * len(batches))[i]) for i, b in enumerate(batches)]
    with TrinoDestination(config) as dest:
        dest.write(WriteRequest(settings=s, schema=batches[0].schema), chunks, lambda n, st: commits.append((n, st)))
    return commits


def rows_of(query, config: dict, table: str = "t", order: str = "1") -> list[list]:
    return query(f'SELECT * FROM "{config["catalog"]}"."{config["schema"]}"."{table}" ORDER BY {order}')


def tables_of(query, config: dict) -> list[str]:
    return sorted(
        r[0]
        for r in query(f'SELECT table_name FROM "{config["catalog"]}".information_schema.tables WHERE table_schema = ?', [config["schema"]])
    )


UTC = dt.timezone.utc
ALL_TYPES = pa.schema(
    [
        pa.field("i8", pa.int8()),
        pa.field("i16", pa.int16()),
        pa.field("i32", pa.int32()),
        pa.field("i64", pa.int64()),
        pa.field("u64", pa.uint64()),
        pa.field("f32", pa.float32()),
        pa.field("f64", pa.float64()),
        pa.field("dec", pa.decimal128(12, 2)),
        pa.field("wide_dec", pa.decimal128(38, 10)),
        pa.field("txt", pa.string()),
        pa.field("flag", pa.bool_()),
        pa.field("day", pa.date32()),
        pa.field("ts_tz", pa.timestamp("us", "UTC")),
        pa.field("ts", pa.timestamp("us")),
        pa.field("tm", pa.time64("us")),
        pa.field("bin", pa.binary()),
        json_field("doc"),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("obj", pa.struct([("a", pa.int64()), ("b", pa.string())])),
    ]
)
ROWS = [
    {
        "i8": -128,
        "i16": 32767,
        "i32": -2147483648,
        "i64": 9223372036854775807,
        "u64": 18446744073709551615,
        "f32": 1.5,
        "f64": 0.1,
        "dec": decimal.Decimal("-1234567890.12"),
        "wide_dec": decimal.Decimal("1234567890123456789012345678.0123456789"),
        "txt": 'it\'s "quoted"; -- é ☃ 𝄞\nnew line\x00nul',
        "flag": True,
        "day": dt.date(1970, 1, 1),
        "ts_tz": dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        "ts": dt.datetime(1999, 12, 31, 0, 0, 0, 1),
        "tm": dt.time(23, 59, 59, 999999),
        "bin": b"\x00\xff'\x00",
        "doc": '{"k": [1, 2, {"x": "y\'z"}]}',
        "tags": ["a", "b'c"],
        "obj": {"a": 1, "b": "two"},
    },
    {"f64": float("inf"), "f32": float("-inf"), "txt": "", "bin": b"", "tags": []},
    {k: None for k in ALL_TYPES.names},
]


@pytest.mark.parametrize(
    "catalog,path",
    [("iceberg", "sql"), ("memory", "sql"), ("iceberg", "files"), ("memory", "files"), ("delta_s3", "sql"), ("delta_s3", "s3")],
)
def test_every_column_type_round_trips(catalog, path, trino_config, trino_server, query) -> None:
    """Both load paths: SQL statements, and Parquet files read through the hive catalog (``s3``: files
    in the S3 stand-in's bucket, into Delta Lake tables there)."""
    config = with_path(trino_config | {"catalog": catalog}, trino_server, path)
    rows = [dict(r, i64=r.get("i64") if i != 1 else 1) for i, r in enumerate(ROWS)]
    rows[1]["i64"], rows[2]["i64"] = 1, 2
    rows[0]["i64"] = 0
    batch = pa.RecordBatch.from_pylist([{k: r.get(k) for k in ALL_TYPES.names} for r in rows], schema=ALL_TYPES)
    write(config, [batch], replication_method="FULL_TABLE")

    types = dict(
        query(
            f'SELECT column_name, data_type FROM "{catalog}".information_schema.columns WHERE table_schema = ? AND table_name = ?',
            [config["schema"], "t"],
        )
    )
    json_type = "json" if catalog == "memory" else "varchar"
    delta = catalog.startswith("delta")  # zoned timestamps as UTC timestamp(6), times as text (Trino's Delta has no time)
    assert types == {
        "i8": "integer", "i16": "integer", "i32": "integer", "i64": "bigint", "u64": "decimal(20,0)", "f32": "real",
        "f64": "double", "dec": "decimal(12,2)", "wide_dec": "decimal(38,10)", "txt": "varchar", "flag": "boolean",
        "day": "date", "ts_tz": "timestamp(6)" if delta else "timestamp(6) with time zone", "ts": "timestamp(6)",
        "tm": "varchar" if delta else "time(6)", "bin": "varbinary", "doc": json_type, "tags": json_type, "obj": json_type,
    }  # fmt: skip
    back = rows_of(query, config, order='"i64"')
    first = dict(zip(ALL_TYPES.names, back[0]))
    expected = {k: v for k, v in ROWS[0].items()} | {"i64": 0}
    if delta:
        expected |= {"ts_tz": ROWS[0]["ts_tz"].replace(tzinfo=None), "tm": ROWS[0]["tm"].isoformat()}
    for name in ("doc", "tags", "obj"):
        assert json.loads(first.pop(name)) == (json.loads(expected.pop(name)) if name == "doc" else expected.pop(name))
    assert first.pop("ts_tz") == expected.pop("ts_tz")  # the same instant (read back in the session's zone)
    assert first == expected
    second = dict(zip(ALL_TYPES.names, back[1]))
    assert (second["f64"], second["f32"], second["txt"], second["bin"], json.loads(second["tags"])) == (
        float("inf"),
        float("-inf"),
        "",
        b"",
        [],
    )
    assert back[2] == [None] * 3 + [2] + [None] * (len(ALL_TYPES) - 4)
    assert tables_of(query, config) == ["t"]  # no staging table left
    if path != "sql":
        assert staging_leftovers(query, trino_server, config) == []


def orders_batch(ids, note: str, start: int = 0) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "id": pa.array(list(ids), pa.int64()),
            "note": [f"{note} {i}" for i in ids],
            "updated_at": pa.array(
                [dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=start + i) for i in ids], pa.timestamp("us", "UTC")
            ),
        }
    )


@pytest.mark.parametrize(
    "catalog,path",
    [("iceberg", "sql"), ("memory", "sql"), ("iceberg", "files"), ("iceberg", "s3"), ("delta_s3", "sql"), ("delta_s3", "s3")],
)
def test_full_table_rerun_leaves_exactly_the_source_rows(catalog, path, trino_config, trino_server, query) -> None:
    """``delta_s3``: Delta Lake tables on the S3 stand-in, where Trino 476 replaces and writes into
    existing Delta tables (on local files it does not); ``s3``: the Parquet files staged in its bucket."""
    config = with_path(trino_config | {"catalog": catalog}, trino_server, path)
    batches = [orders_batch(range(i, i + 1000), "first") for i in range(0, 3000, 1000)]
    commits = write(config, batches, replication_method="FULL_TABLE", states=[{"n": 1}, {"n": 2}, {"n": 3}])
    assert commits == [(3000, {"n": 3})]  # one commit, after the swap
    assert [r[0] for r in rows_of(query, config)] == list(range(3000))
    # the second run has fewer, changed rows and a new column: the table holds exactly them
    second = orders_batch(range(500, 1500), "second").append_column("extra", pa.array(["x"] * 1000))
    write(config, [second], replication_method="FULL_TABLE")
    back = rows_of(query, config)
    assert [(r[0], r[1], r[3]) for r in back] == [(i, f"second {i}", "x") for i in range(500, 1500)]

    # a run that fails midway leaves the table as it was
    def failing():
        yield Chunk(orders_batch(range(10), "third"), None)
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"), TrinoDestination(config) as dest:
        dest.write(WriteRequest(settings=StreamSettings(stream="s", destination_table="t"), schema=second.schema), failing())
    assert rows_of(query, config) == back
    assert tables_of(query, config) == ["t"]
    if path != "sql":
        assert staging_leftovers(query, trino_server, config) == []


def test_full_table_with_unique_constraints_keeps_one_row_per_key(trino_config, query) -> None:
    batch = pa.RecordBatch.from_pydict({"id": [1, 2, 1, 3, 2], "v": ["a", "b", "c", "d", "e"]})
    write(trino_config, [batch], replication_method="FULL_TABLE", unique_constraints=["id"])
    assert rows_of(query, trino_config) == [[1, "c"], [2, "e"], [3, "d"]]  # the last row of each key
    write(trino_config, [batch], replication_method="FULL_TABLE", unique_constraints=["id"], unique_conflict_method="IGNORE")
    assert rows_of(query, trino_config) == [[1, "a"], [2, "b"], [3, "d"]]  # the first


@pytest.mark.parametrize("catalog,path", [("iceberg", "sql"), ("iceberg", "files"), ("delta_s3", "sql"), ("delta_s3", "s3")])
def test_incremental_merge_upserts_last_row_per_key_and_ignore_keeps_the_first(catalog, path, trino_config, trino_server, query) -> None:
    trino_config = with_path(trino_config | {"catalog": catalog}, trino_server, path)
    settings = dict(replication_method="INCREMENTAL", unique_constraints=["id"])
    write(trino_config, [orders_batch(range(5), "first")], **settings)
    # the same keys again, a key twice in one window (the last wins), and a new one
    again = pa.RecordBatch.from_pydict(
        {"id": [3, 4, 4, 5], "note": ["x3", "x4", "y4", "x5"], "updated_at": orders_batch([3, 4, 4, 5], "").column(2)}
    )
    write(trino_config, [again], **settings)
    assert [(r[0], r[1]) for r in rows_of(query, trino_config)] == [
        (0, "first 0"),
        (1, "first 1"),
        (2, "first 2"),
        (3, "x3"),
        (4, "y4"),
        (5, "x5"),
    ]
    write(trino_config, [again.slice(0, 2)], table="t", **(settings | {"unique_conflict_method": "IGNORE"}))
    assert rows_of(query, trino_config)[3][1] == "x3"
    if path != "sql":
        assert staging_leftovers(query, trino_server, trino_config) == []


@pytest.mark.parametrize("path", ["sql", "files"])
def test_commit_windows_call_on_commit_after_each_merge(path, trino_config, trino_server, query) -> None:
    config = trino_config | {"commit_rows": 1000}
    if path == "files":
        config = staged(config, trino_server)
    batches = [orders_batch(range(i, i + 1000), "w") for i in range(0, 3000, 1000)]
    commits = write(config, batches, states=[{"n": 1}, {"n": 2}, {"n": 3}], replication_method="INCREMENTAL", unique_constraints=["id"])
    assert commits[:3] == [(1000, {"n": 1}), (2000, {"n": 2}), (3000, {"n": 3})]
    assert query(f'SELECT count(*), count(DISTINCT id) FROM "{config["catalog"]}"."{config["schema"]}".t') == [[3000, 3000]]


def test_new_columns_are_added_or_refused(trino_config, query) -> None:
    write(trino_config, [orders_batch(range(3), "a")], replication_method="INCREMENTAL")
    wider = orders_batch(range(3, 5), "b").append_column("Extra Col", pa.array([1.5, 2.5]))
    with pytest.raises(SchemaMismatch, match="auto_add_new_fields"):
        write(trino_config, [wider], replication_method="INCREMENTAL", auto_add_new_fields=False)
    write(trino_config, [wider], replication_method="INCREMENTAL")
    assert [r[3] for r in rows_of(query, trino_config)] == [None, None, None, 1.5, 2.5]
    types = query(
        f'SELECT data_type FROM "{trino_config["catalog"]}".information_schema.columns WHERE table_schema = ? AND column_name = ?',
        [trino_config["schema"], "extra col"],
    )
    assert types == [["double"]]


@pytest.mark.parametrize("path", ["sql", "files"])
def test_hostile_identifiers_run_no_sql(path, trino_config, trino_server, query) -> None:
    if path == "files":
        trino_config = staged(trino_config, trino_server)
    write(trino_config, [pa.RecordBatch.from_pydict({"id": [1]})], table="victim")
    evil_table = 'x"; DROP TABLE victim; --'
    evil_column = 'c") AS u(c0); DROP TABLE victim; --'
    batch = pa.RecordBatch.from_pydict({"id": [1, 2], evil_column: ["it's", "'); DROP TABLE victim; --"]})
    write(trino_config, [batch], table=evil_table, replication_method="INCREMENTAL", unique_constraints=["id"])
    write(trino_config, [batch], table=evil_table, replication_method="FULL_TABLE")
    tables = tables_of(query, trino_config)  # Iceberg's file metastore lists the name escaped (x%22; ...)
    assert len(tables) == 2 and "victim" in tables
    assert rows_of(query, trino_config, "victim") == [[1]]
    cat, schema = trino_config["catalog"], trino_config["schema"]
    quoted = '"' + evil_table.replace('"', '""') + '"'
    assert query(f'SELECT * FROM "{cat}"."{schema}".{quoted} ORDER BY 1') == [[1, "it's"], [2, "'); DROP TABLE victim; --"]]


def test_columns_differing_only_by_case_are_refused(trino_config) -> None:
    with pytest.raises(SchemaMismatch, match="differ only by case"):
        write(trino_config, [pa.RecordBatch.from_pydict({"id": [1], "ID": [2]})])


def test_memory_catalog_merge_is_refused_before_anything_is_written(trino_config, query) -> None:
    config = trino_config | {"catalog": "memory"}
    with pytest.raises(ConfigError) as raised:
        write(config, [orders_batch(range(3), "a")], replication_method="INCREMENTAL", unique_constraints=["id"])
    message = str(raised.value)
    assert "catalog 'memory'" in message and "nothing was written" in message
    assert "Iceberg" in message and "drop unique_constraints" in message and "FULL_TABLE" in message
    assert [config["schema"]] not in query("SELECT schema_name FROM memory.information_schema.schemata")


def test_session_properties_apply_to_every_statement(trino_config, query) -> None:
    write(trino_config | {"session_properties": {"query_max_run_time": "1h"}}, [orders_batch(range(3), "a")])
    assert len(rows_of(query, trino_config)) == 3
    with pytest.raises(ConfigError, match="session property") as raised:
        write(trino_config | {"session_properties": {"no_such_property": "1"}}, [orders_batch(range(3), "a")])
    assert "session_properties" in str(raised.value)


def test_config_errors_are_plain(trino_server) -> None:
    base = {"host": trino_server["host"], "port": trino_server["port"], "user": "u", "catalog": "iceberg"}
    with pytest.raises(ConfigError, match="only over HTTPS"):
        TrinoDestination(base | {"password": "s3cret-pw"})
    with pytest.raises(ConfigError, match="only over HTTPS"):
        TrinoDestination(base | {"jwt": "eyJ.s3cret"})
    from jupyter_di.connectors import registry
    from jupyter_di.connectors.config_check import check_config

    with pytest.raises(ConfigError, match="quote the value"):
        check_config(registry.get("trino"), base | {"verify": False})
    assert check_config(registry.get("trino"), base | {"verify": "false"})["verify"] == "false"
    with pytest.raises(ConfigError, match="no catalog 'nope'"):
        TrinoDestination(base | {"catalog": "nope"}).check()
    closed = base | {"port": 1, "http_scheme": "https", "password": "s3cret-pw", "verify": False}
    with pytest.raises(ConnectionFailed) as raised:
        TrinoDestination(closed).check()
    assert "s3cret-pw" not in str(raised.value) and "could not reach Trino at https://" in str(raised.value)


def test_delta_lake_on_local_files_creates_tables_and_refuses_merge_before_writing(trino_config, trino_server, query) -> None:
    """Trino 476's Delta Lake connector writes into an existing table only on object stores (its
    transaction log synchronizers: s3, gs, abfs; ``delta.enable-non-concurrent-writes`` does not cover
    local files), so on local files only a new table loads, by CREATE TABLE AS from the Parquet path's
    external table (the SQL path INSERTs into staging tables first), and a keyed INCREMENTAL stream is
    refused, by the MERGE probe, before anything is written."""
    config = staged(trino_config | {"catalog": "delta"}, trino_server)
    when = dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)
    batch = pa.RecordBatch.from_pydict(
        {
            "id": [1, 2],
            "at": pa.array([when, None], pa.timestamp("us", "UTC")),
            "tm": pa.array([dt.time(1, 2, 3, 456789), None], pa.time64("us")),
            "doc": pa.array(['{"a": 1}', None]),
        }
    )
    write(config, [batch], replication_method="FULL_TABLE")
    types = query(
        "SELECT column_name, data_type FROM delta.information_schema.columns WHERE table_schema = ? AND table_name = 't' ORDER BY ordinal_position",
        [config["schema"]],
    )
    assert types == [["id", "bigint"], ["at", "timestamp(6)"], ["tm", "varchar"], ["doc", "varchar"]]
    assert rows_of(query, config) == [[1, when.replace(tzinfo=None), "01:02:03.456789", '{"a": 1}'], [2, None, None, None]]
    with pytest.raises(ConfigError) as raised:
        write(config, [batch], table="keyed", replication_method="INCREMENTAL", unique_constraints=["id"])
    assert "catalog 'delta' cannot run it" in str(raised.value) and "nothing was written" in str(raised.value)
    assert tables_of(query, config) == ["t"]
    assert staging_leftovers(query, trino_server, config) == []


@pytest.mark.parametrize("path", ["sql", "files"])
def test_a_decimal_with_more_places_than_the_column_fails_instead_of_rounding(path, trino_config, trino_server, query) -> None:
    config = trino_config if path == "sql" else staged(trino_config, trino_server)
    two = pa.RecordBatch.from_pydict({"id": [1], "price": pa.array([decimal.Decimal("1.25")], pa.decimal128(12, 2))})
    write(config, [two], replication_method="INCREMENTAL", unique_constraints=["id"])
    # the source now has 4 places: 2.5000 fits the column exactly, 3.1416 would become 3.14
    four = pa.RecordBatch.from_pydict(
        {"id": [2, 3], "price": pa.array([decimal.Decimal("2.5000"), decimal.Decimal("3.1416")], pa.decimal128(14, 4))}
    )
    with pytest.raises(SchemaMismatch) as raised:
        write(config, [four], replication_method="INCREMENTAL", unique_constraints=["id"])
    message = str(raised.value)
    assert "column 'price'" in message and "decimal(12,2)" in message and "1 value" in message and "round" in message
    assert "stream 's'" in message and "upstream block" in message
    assert rows_of(query, config) == [[1, decimal.Decimal("1.25")]]  # nothing of the load published
    write(config, [four.slice(0, 1)], replication_method="INCREMENTAL", unique_constraints=["id"])  # exact values load
    assert rows_of(query, config) == [[1, decimal.Decimal("1.25")], [2, decimal.Decimal("2.50")]]
    if path == "files":
        assert staging_leftovers(query, trino_server, config) == []


@pytest.mark.parametrize("path", ["sql", "files"])
def test_a_value_the_column_cannot_hold_fails_naming_the_table_and_keeps_its_rows(path, trino_config, trino_server, query) -> None:
    config = trino_config if path == "sql" else staged(trino_config, trino_server)
    write(config, [pa.RecordBatch.from_pydict({"id": pa.array([1], pa.int32())})], replication_method="INCREMENTAL")
    too_big = pa.RecordBatch.from_pydict({"id": pa.array([2, 3_000_000_000], pa.int64())})
    with pytest.raises(SchemaMismatch) as raised:
        write(config, [too_big], replication_method="INCREMENTAL")
    message = str(raised.value)
    assert f"could not write into table iceberg.{config['schema']}.t" in message and "previous rows are kept" in message
    assert rows_of(query, config) == [[1]]
    assert tables_of(query, config) == ["t"]
    if path == "files":
        assert staging_leftovers(query, trino_server, config) == []


def test_staging_config_errors_name_the_option_before_anything_is_written(trino_config, trino_server, query) -> None:
    config = staged(trino_config, trino_server)
    with pytest.raises(ConfigError, match="staging_location but no staging_catalog"):
        TrinoDestination({k: v for k, v in config.items() if k != "staging_catalog"})
    with pytest.raises(ConfigError) as raised:
        write(config | {"staging_catalog": "nope"}, [orders_batch(range(3), "a")])
    assert "no catalog 'nope'" in str(raised.value) and "set staging_catalog to one of:" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        write(config | {"staging_catalog": "iceberg"}, [orders_batch(range(3), "a")])
    assert "'iceberg' catalog" in str(raised.value) and "needs a Hive catalog" in str(raised.value)
    assert [config["schema"]] not in query("SELECT schema_name FROM iceberg.information_schema.schemata")
    # a bucket that does not exist, for a keyed INCREMENTAL stream (which would create the table first)
    on_s3 = staged(trino_config | {"catalog": "delta_s3"}, trino_server, "s3")
    with pytest.raises(ConfigError) as raised:
        write(on_s3 | {"staging_location": "s3://no-such-bucket/x"}, [orders_batch(range(3), "a")], unique_constraints=["id"])
    assert "cannot write staging_location 's3://no-such-bucket/x'" in str(raised.value) and "AWS_ENDPOINT_URL" in str(raised.value)
    assert [on_s3["schema"]] not in query("SELECT schema_name FROM delta_s3.information_schema.schemata")


# -- HTTPS, password and JWT (the test server's second port) ------------------------------------------------


def https_config(trino_server: dict, **auth) -> dict:
    return {
        "host": trino_server["host"],
        "port": int(trino_server["https_port"]),
        "user": "jdi",
        "catalog": "iceberg",
        "schema": "t_" + uuid.uuid4().hex[:10],
        "http_scheme": "https",
        "verify": str(Path(trino_server["dir"]) / "auth" / "ca.pem"),
    } | auth


def test_https_with_the_right_password_loads_rows(trino_server, query, monkeypatch) -> None:
    from tests.support.trino_server import HTTPS_PASSWORD

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")  # the block's verify wins over the environment
    config = https_config(trino_server, password=HTTPS_PASSWORD)
    write(config, [orders_batch(range(5), "tls")], replication_method="INCREMENTAL", unique_constraints=["id"])
    assert [r[1] for r in rows_of(query, config)] == [f"tls {i}" for i in range(5)]


def test_https_wrong_password_is_one_plain_error_without_the_secret(trino_server, query) -> None:
    config = https_config(trino_server, password="wrong-s3cret-pw")
    with pytest.raises(ConnectionFailed) as raised:
        write(config, [orders_batch(range(5), "x")])
    message = str(raised.value)
    assert "refused the credentials" in message and "https://" in message and "check user, password or jwt" in message
    assert "wrong-s3cret-pw" not in message and "wrong-s3cret-pw" not in repr(raised.value.__dict__)
    with pytest.raises(ConnectionFailed) as raised:
        TrinoDestination(config).check()
    assert "refused the credentials" in str(raised.value)
    assert [config["schema"]] not in query("SELECT schema_name FROM iceberg.information_schema.schemata")


def test_https_with_a_jwt_loads_rows_and_a_bad_one_is_refused(trino_server, query) -> None:
    import jwt

    key = (Path(trino_server["dir"]) / "auth" / "jwt-private.pem").read_text()
    token = jwt.encode({"sub": "jdi", "exp": int(time.time()) + 600}, key, algorithm="RS256")
    config = https_config(trino_server, jwt=token)
    write(config, [orders_batch(range(3), "jwt")], replication_method="FULL_TABLE")
    assert len(rows_of(query, config)) == 3
    forged = jwt.encode({"sub": "jdi", "exp": int(time.time()) + 600}, "not-the-key-" * 4, algorithm="HS256")
    with pytest.raises(ConnectionFailed) as raised:
        TrinoDestination(config | {"jwt": forged}).check()
    assert "refused the credentials" in str(raised.value) and forged not in str(raised.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_verify_with_the_ca_bundle_false_and_default(trino_server) -> None:
    from tests.support.trino_server import HTTPS_PASSWORD

    config = https_config(trino_server, password=HTTPS_PASSWORD)
    TrinoDestination(config).check()  # the CA bundle
    TrinoDestination(config | {"verify": "false"}).check()  # no verification
    with pytest.raises(ConnectionFailed) as raised:  # the system's CAs do not know the test CA
        TrinoDestination({k: v for k, v in config.items() if k != "verify"}).check()
    assert "could not reach Trino at https://" in str(raised.value) and "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert HTTPS_PASSWORD not in str(raised.value)


# -- whole pipelines: PostgreSQL -> Trino (Iceberg) through `jupyter-di run` ---------------------------------


def pipeline(path: Path, pg: dict, trino: dict, commit_rows: int = 1_000_000, batch_size: int = 1000) -> Path:
    src = f"  host: {pg['host']}\n  port: {pg['port']}\n  username: {pg['username']}\n  database: {pg['database']}\n"
    keys = [
        k
        for k in ("host", "port", "user", "catalog", "schema", "staging_location", "staging_server_location", "staging_catalog")
        if k in trino
    ]
    dest = "".join(f"  {k}: {trino[k]}\n" for k in keys) + f"  commit_rows: {commit_rows}\n"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(c)
        for c in (
            f"%load_ext jupyter_di\n%config JupyterDI.batch_size = {batch_size}",
            "%%di_source src\nsource: postgresql\nconfig:\n" + src + "streams:\n  orders:\n    replication_method: INCREMENTAL\n"
            "    bookmark_properties: [updated_at]\n    key_properties: [id]\n    unique_constraints: [id]\n",
            "%%di_destination dest --upstream src\ndestination: trino\nconfig:\n" + dest,
        )
    ]
    nbformat.write(nb, path)
    return path


def run_cli(notebook: Path, *kill: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(KILL_POINTS), *kill, "--"] if kill else [sys.executable, "-m", "jupyter_di.cli"]
    return subprocess.run([*cmd, "run", "-q", str(notebook)], capture_output=True, text=True, timeout=600, cwd=notebook.parent)


def trino_rows(query, config: dict) -> tuple[dict, int]:
    rows = query(f'SELECT id, note, to_unixtime(updated_at) FROM "{config["catalog"]}"."{config["schema"]}".orders')
    return {int(i): (n, round(iso_epoch(u), 6)) for i, n, u in rows}, len(rows)


@pytest.mark.parametrize("catalog,path", [("iceberg", "sql"), ("iceberg", "files"), ("delta_s3", "sql"), ("delta_s3", "s3")])
def test_merge_upserts_with_ties_at_the_bookmark(catalog, path, tmp_path, pg_config, pg_connect, trino_config, trino_server, query) -> None:
    import random

    conn = pg_connect()
    create_orders(conn, 3000)
    trino_config = trino_config | {"catalog": catalog}
    config = with_path(trino_config, trino_server, path)
    notebook = pipeline(tmp_path / "p.ipynb", pg_config, config, commit_rows=1000)
    rng = random.Random(3)
    for round_no in range(3):
        done = run_cli(notebook)
        assert done.returncode == 0, done.stderr
        assert not differences(source_rows(conn), *trino_rows(query, trino_config)), f"round {round_no}"
        assert iso_epoch(get_bookmark(notebook, "src", "orders")["updated_at"]) == pytest.approx(source_max_epoch(conn), abs=1e-6)
        if path != "sql":  # each window's Parquet files and external table are gone once it is merged
            assert staging_leftovers(query, trino_server, config, "orders") == []
        mutate(conn, round_no + 1, rng, new=300, updated=200, id_range=3000)  # every statement's rows share one timestamp


def _killable_load(tmp_path, pg_connect, pg_config, config, rows_total):  # noqa: ANN001, ANN202
    """A source table of ``rows_total`` orders and a `jupyter-di run` loading it into Trino in 2,000-row
    windows, started in the background for the caller to SIGKILL mid-load."""
    conn = pg_connect()
    create_orders(conn, rows_total)
    notebook = pipeline(tmp_path / "k.ipynb", pg_config, config, commit_rows=2000, batch_size=500)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(notebook)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return conn, notebook, proc


def test_kill_minus_nine_mid_load_then_resume_loses_nothing(tmp_path, pg_config, pg_connect, trino_config, query) -> None:
    """SIGKILL while rows are being loaded into the staging table (after one window was merged), then
    SIGKILL between a MERGE and the bookmark save; each resume ends equal to the source."""
    import random

    rows_total = 20000  # ten windows: the run cannot finish between the poll that sees a staged window and the kill
    conn, notebook, proc = _killable_load(tmp_path, pg_connect, pg_config, trino_config, rows_total)
    cat, schema = trino_config["catalog"], trino_config["schema"]
    deadline = time.monotonic() + 300
    stage_rows = 0
    while time.monotonic() < deadline and proc.poll() is None:
        names = tables_of(query, trino_config)
        stages = [n for n in names if n.startswith("_jupyter_di_stage_")]
        merged = query(f'SELECT count(*) FROM "{cat}"."{schema}".orders')[0][0] if "orders" in names else 0
        if stages and merged:
            try:
                stage_rows = sum(query(f'SELECT count(*) FROM "{cat}"."{schema}"."{stage}"')[0][0] for stage in stages)
            except Exception:  # the stages were merged and dropped just now
                stage_rows = 0
            if stage_rows:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed mid-load"
    assert stage_rows > 0
    rows, count = trino_rows(query, trino_config)
    assert 0 < count < rows_total and count % 2000 == 0  # whole windows only: a window is published in one MERGE

    rng = random.Random(5)
    mutate(conn, 1, rng, new=300, updated=200, id_range=rows_total)
    done = run_cli(notebook)
    assert done.returncode == 0, done.stderr
    assert not differences(source_rows(conn), *trino_rows(query, trino_config))
    assert not [n for n in tables_of(query, trino_config) if n.startswith("_jupyter_di")]

    mutate(conn, 2, rng, new=300, updated=200, id_range=rows_total)
    killed = run_cli(notebook, "--at-local-save", "dest", "1")  # merged, bookmark not saved
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    mutate(conn, 3, rng, new=300, updated=200, id_range=rows_total)
    done = run_cli(notebook)
    assert done.returncode == 0, done.stderr
    assert not differences(source_rows(conn), *trino_rows(query, trino_config))


@pytest.mark.parametrize("catalog,path", [("iceberg", "files"), ("delta_s3", "s3")])
def test_kill_minus_nine_mid_load_on_the_parquet_path_then_resume(
    catalog, path, tmp_path, pg_config, pg_connect, trino_config, trino_server, query
) -> None:
    """The Parquet file path: SIGKILL while a window's files are being written (after one window was
    merged); the resume equals the source and removes the killed run's files and external tables
    (on S3: found by listing the bucket's prefix)."""
    import random

    rows_total = 20000  # ten windows: the run cannot finish between the poll that sees a staged window and the kill
    config = staged(trino_config | {"catalog": catalog}, trino_server, path)
    conn, notebook, proc = _killable_load(tmp_path, pg_connect, pg_config, config, rows_total)
    cat, schema = config["catalog"], config["schema"]
    deadline = time.monotonic() + 300
    staged_files: list = []
    while time.monotonic() < deadline and proc.poll() is None:
        merged = query(f'SELECT count(*) FROM "{cat}"."{schema}".orders')[0][0] if "orders" in tables_of(query, config) else 0
        staged_files = [n for n in staging_files(trino_server, config) if n.startswith("_jupyter_di_stage_") and n.endswith(".parquet")]
        if merged and staged_files:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed mid-load"
    assert staged_files
    rows, count = trino_rows(query, config)
    assert 0 < count < rows_total and count % 2000 == 0  # whole windows only
    assert staging_leftovers(query, trino_server, config, "orders")  # the killed run's files are still there

    mutate(conn, 1, random.Random(7), new=300, updated=200, id_range=rows_total)
    done = run_cli(notebook)
    assert done.returncode == 0, done.stderr
    assert not differences(source_rows(conn), *trino_rows(query, config))
    assert staging_leftovers(query, trino_server, config, "orders") == []
    assert not [n for n in tables_of(query, config) if n.startswith("_jupyter_di")]
