"""The Singer adapter, against tiny fake taps/targets (no install) and real Meltano packages.

Fake executables are Python scripts written by the tests; their behaviour is
chosen by their own config file (which also proves the config reaches them).
The real packages (meltanolabs-tap-postgres, meltanolabs-target-postgres,
target-jsonl) are installed once into cached venvs by tests/support/singer_venvs.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gc
import json
import logging
import os
import shutil
import stat
import sys
import textwrap
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from jupyter_di.connectors import registry
from jupyter_di.connectors.base import JSON_LOGICAL_TYPE, LOGICAL_TYPE_KEY, Chunk, ReadRequest, StreamSettings, WriteRequest
from jupyter_di.connectors.singer import SPEC, SingerDestination, SingerSource
from jupyter_di.errors import ConfigError, ConnectionFailed, DIError
from tests.support import postgres
from tests.support.singer_venvs import singer_exe  # noqa: F401  (pytest fixture)

UTC = dt.timezone.utc
SECRET = "s3cr3t-Pa55word"

FAKE_TAP = textwrap.dedent(
    """
    import json, os, stat, sys, time
    args = sys.argv[1:]
    opt = lambda name: args[args.index(name) + 1] if name in args else None
    cfg_path = opt("--config")
    cfg = json.load(open(cfg_path))
    mode = cfg.get("mode", "ok")
    dump = cfg.get("dump_dir")
    if dump:
        json.dump({"argv": sys.argv, "config_mode": oct(stat.S_IMODE(os.stat(cfg_path).st_mode)), "config_path": cfg_path,
                   "catalog": json.load(open(opt("--catalog"))) if opt("--catalog") else None,
                   "state": json.load(open(opt("--state"))) if opt("--state") else None},
                  open(os.path.join(dump, "tap_call.json"), "w"))
        open(os.path.join(dump, "tap.pid"), "w").write(str(os.getpid()))
    out = lambda m: print(json.dumps(m), flush=True)
    sys.stderr.write("connecting with password " + cfg.get("password", "") + "\\n")
    sys.stderr.flush()
    CATALOG = {"streams": [{"tap_stream_id": "items", "stream": "items", "key_properties": ["id"],
      "schema": {"type": "object", "properties": {
        "id": {"type": ["integer"]}, "name": {"type": ["null", "string"]}, "price": {"type": ["null", "number"]},
        "ok": {"type": ["null", "boolean"]}, "day": {"type": ["null", "string"], "format": "date"},
        "ts": {"type": ["null", "string"], "format": "date-time"},
        "meta": {"type": ["null", "object"]}, "tags": {"type": ["null", "array"], "items": {"type": "string"}}}},
      "metadata": [{"breadcrumb": [], "metadata": {"inclusion": "available", "table-key-properties": ["id"],
                    "valid-replication-keys": ["ts"]}},
                   {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic"}},
                   {"breadcrumb": ["properties", "name"], "metadata": {"inclusion": "available"}}]},
      {"tap_stream_id": "other", "stream": "other", "schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
       "metadata": []}]}
    if "--discover" in args:
        out(CATALOG) if mode != "bad_discover" else print("not json")
        sys.exit(0)
    if mode == "exit3":
        sys.stderr.write("FATAL boom: login as admin/" + cfg["password"] + " refused\\n")
        sys.exit(3)
    if mode == "record_first":
        out({"type": "RECORD", "stream": "items", "record": {"id": 1}})
        sys.exit(0)
    out({"type": "SCHEMA", "stream": "other", "schema": CATALOG["streams"][1]["schema"], "key_properties": []})
    out({"type": "RECORD", "stream": "other", "record": {"x": 99}})
    out({"type": "SCHEMA", "stream": "items", "schema": CATALOG["streams"][0]["schema"], "key_properties": ["id"]})
    if mode == "infinite":
        i = 0
        while True:
            i += 1
            out({"type": "RECORD", "stream": "items", "record": {"id": i, "name": "n%d" % i}})
    rows = [
        {"id": 1, "name": "a", "price": 1.5, "ok": True, "day": "2024-01-02", "ts": "2024-01-01T10:00:00Z",
         "meta": {"k": [1, 2]}, "tags": ["x", "y"]},
        {"id": 2, "name": None, "price": 3, "ok": False, "day": None, "ts": "2024-01-01T12:30:00.250000+02:00"},
        {"id": 3, "name": "c", "ts": "2024-01-02T00:00:00", "extra": "dropped"},
        {"id": 4, "name": "d", "ts": "2024-01-03T00:00:00+00:00"},
        {"id": 5, "name": "e", "ts": "2024-01-04T00:00:00+00:00"},
    ]
    for i, r in enumerate(rows):
        out({"type": "record", "stream": "items", "record": r, "time_extracted": "2024-01-05T00:00:00Z"})
        if i == 2 and mode == "malformed":
            print("this is not json: password=" + cfg["password"], flush=True)
        if i == 2 and mode == "crash_midway":
            sys.stderr.write("lost connection\\n")
            sys.exit(3)
    out({"type": "STATE", "value": {"bookmarks": {"items": {"replication_key": "ts", "replication_key_value": "x"}}}})
    """
)

FAKE_TARGET = textwrap.dedent(
    """
    import json, os, sys
    args = sys.argv[1:]
    cfg = json.load(open(args[args.index("--config") + 1]))
    mode = cfg.get("mode", "ok")
    got = open(cfg["received"], "w")
    states = []
    for line in sys.stdin:
        got.write(line)
        msg = json.loads(line)
        if msg["type"] == "STATE":
            if mode == "echo_each":
                print(json.dumps(msg["value"]), flush=True)
            states.append(msg["value"])
        if mode == "exit3" and msg["type"] == "RECORD":
            sys.stderr.write("cannot insert, token " + cfg["api_token"] + " rejected\\n")
            sys.exit(3)
    got.close()
    print("a line that is not json", flush=True)
    if mode == "echo_end" and states:
        print(json.dumps(states[-1]), flush=True)
    json.dump(cfg, open(cfg["received"] + ".config", "w"))
    """
)


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def fake_tap(tmp_path):
    exe = _script(tmp_path, "tap-fake", FAKE_TAP)
    dump = tmp_path / "dump"
    dump.mkdir()

    def make(mode: str = "ok", **extra) -> SingerSource:
        return SingerSource({"executable": exe, "config": {"mode": mode, "dump_dir": str(dump), "password": SECRET, **extra}})

    make.dump = dump
    return make


def _items(**kw) -> StreamSettings:
    return StreamSettings("items", **kw)


# ---------------------------------------------------------------- fake tap: parsing paths


def test_spec_is_registered_as_source_and_destination():
    spec = registry.get("singer")
    assert spec is SPEC
    assert spec.source is SingerSource and spec.destination is SingerDestination
    assert "config" in spec.secret_fields()
    assert SingerDestination.transactional is False


def test_fake_discover_returns_the_catalog_as_is(fake_tap):
    src = fake_tap()
    catalog = src.discover()
    assert [s["tap_stream_id"] for s in catalog["streams"]] == ["items", "other"]
    assert catalog["streams"][0]["key_properties"] == ["id"]
    assert [s["tap_stream_id"] for s in src.discover(["other"])["streams"]] == ["other"]


def test_fake_full_read_converts_types_and_batches(fake_tap):
    src = fake_tap()
    reader = src.read(ReadRequest(_items(), batch_size=2))
    batches = list(reader)
    assert [b.num_rows for b in batches] == [2, 2, 1]
    schema = reader.schema
    assert schema.names == ["id", "name", "price", "ok", "day", "ts", "meta", "tags"]
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("day").type == pa.date32()
    assert schema.field("meta").metadata == {LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}
    assert schema.field("tags").metadata == {LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}
    rows = pa.Table.from_batches(batches).to_pylist()
    assert rows[0] == {
        "id": 1,
        "name": "a",
        "price": 1.5,
        "ok": True,
        "day": dt.date(2024, 1, 2),
        "ts": dt.datetime(2024, 1, 1, 10, tzinfo=UTC),
        "meta": '{"k":[1,2]}',
        "tags": '["x","y"]',
    }
    assert rows[1]["ts"] == dt.datetime(2024, 1, 1, 10, 30, 0, 250000, tzinfo=UTC)
    assert rows[1]["name"] is None and rows[1]["price"] == 3.0 and rows[1]["meta"] is None
    assert rows[2]["ts"] == dt.datetime(2024, 1, 2, tzinfo=UTC)  # naive -> UTC
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]


def test_fake_read_writes_selected_catalog_state_and_private_config(fake_tap):
    src = fake_tap()
    settings = _items(columns=["ts", "name"], replication_method="INCREMENTAL", bookmark_properties=["ts"])
    table = src.read(ReadRequest(settings, bookmark={"ts": "2024-01-02T00:00:00+00:00"})).read_all()
    assert table.column_names == ["name", "ts"]  # stream order, only requested columns
    call = json.loads((fake_tap.dump / "tap_call.json").read_text())
    assert call["config_mode"] == "0o600"
    assert not os.path.exists(call["config_path"])  # deleted after the run
    assert SECRET not in " ".join(call["argv"])
    assert call["state"] == {"bookmarks": {"items": {"replication_key": "ts", "replication_key_value": "2024-01-02T00:00:00+00:00"}}}
    items, other = call["catalog"]["streams"]
    md = {tuple(m["breadcrumb"]): m["metadata"] for m in items["metadata"]}
    assert md[()]["selected"] is True
    assert md[()]["replication-method"] == "INCREMENTAL" and md[()]["replication-key"] == "ts"
    assert md[("properties", "name")]["selected"] is True and md[("properties", "ts")]["selected"] is True
    assert md[("properties", "price")]["selected"] is False and md[("properties", "meta")]["selected"] is False
    assert {tuple(m["breadcrumb"]): m["metadata"] for m in other["metadata"]}[()]["selected"] is False


def test_fake_read_limit_and_early_stop_kill_the_tap(fake_tap):
    src = fake_tap("infinite")
    table = src.read(ReadRequest(_items(columns=["id"]), batch_size=100, limit=250)).read_all()
    assert table.column("id").to_pylist() == list(range(1, 251))

    pid = int((fake_tap.dump / "tap.pid").read_text())
    assert not Path(f"/proc/{pid}").exists()  # the limit was reached: killed and reaped

    # the tap's output is spooled until it ends (a later SCHEMA may change the stream's shape):
    # the reader is handed out after the tap is gone, and dropping it removes the spool
    reader = src.read(ReadRequest(_items(columns=["id", "name"]), batch_size=10, limit=30))
    assert not Path(f"/proc/{int((fake_tap.dump / 'tap.pid').read_text())}").exists()
    first = reader.read_next_batch()
    assert first.to_pylist()[0] == {"id": 1, "name": "n1"}
    del reader
    gc.collect()


def test_fake_malformed_line_is_a_clear_redacted_error(fake_tap):
    with pytest.raises(DIError) as err:
        fake_tap("malformed").read(ReadRequest(_items())).read_all()
    text = str(err.value)
    assert "malformed line" in text and "this is not json: password=***" in text
    assert SECRET not in text and "stream 'items'" in text


def test_fake_nonzero_exit_and_crash_midway_are_clear_redacted_errors(fake_tap, caplog):
    caplog.set_level(logging.INFO, logger="jupyter_di.singer")
    with pytest.raises(DIError) as err:
        fake_tap("exit3").read(ReadRequest(_items()))
    text = str(err.value)
    assert "exit code 3" in text and "FATAL boom: login as admin/*** refused" in text
    assert SECRET not in text
    assert "connecting with password ***" in caplog.text and SECRET not in caplog.text

    # a tap that fails midway fails the read before any of its rows is handed out (they are spooled)
    with pytest.raises(DIError, match="exit code 3") as err:
        fake_tap("crash_midway").read(ReadRequest(_items(), batch_size=1))
    assert "lost connection" in str(err.value)


def test_fake_record_before_schema_unknown_stream_and_columns(fake_tap, tmp_path):
    with pytest.raises(DIError, match="RECORD for stream 'items' before its SCHEMA"):
        fake_tap("record_first").read(ReadRequest(_items())).read_all()
    with pytest.raises(ConfigError, match="no stream 'nope'.*'items', 'other'"):
        fake_tap().read(ReadRequest(StreamSettings("nope")))
    with pytest.raises(ConfigError, match="no column.*'missing'"):
        fake_tap().read(ReadRequest(_items(columns=["id", "missing"])))
    with pytest.raises(ConfigError, match="bookmark property 'nope'"):
        fake_tap().read(ReadRequest(_items(replication_method="INCREMENTAL", bookmark_properties=["nope"])))
    with pytest.raises(DIError, match="other than a JSON catalog"):
        fake_tap("bad_discover").discover()
    with pytest.raises(ConfigError, match="not found"):
        SingerSource({"executable": str(tmp_path / "no-such-tap"), "config": {}}).discover()


# ---------------------------------------------------------------- fake target: producing paths


NULL_ROW = {"id": 2, **dict.fromkeys(["amount", "ratio", "at", "day", "doc", 'Odd "name"', "paris", "naive"])}
"""The second row of ``_batch()`` as a target must get it: every value but the id null (NaN too)."""


def _batch() -> pa.RecordBatch:
    schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("amount", pa.decimal128(20, 4)),
            pa.field("ratio", pa.float64()),
            pa.field("at", pa.timestamp("us", tz="UTC")),
            pa.field("day", pa.date32()),
            pa.field("doc", pa.string(), metadata={LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}),
            pa.field('Odd "name"', pa.string()),
            pa.field("paris", pa.timestamp("us", tz="Europe/Paris")),
            pa.field("naive", pa.timestamp("ms")),
        ]
    )
    return pa.RecordBatch.from_pylist(
        [
            {
                "id": 1,
                "amount": decimal.Decimal("12345678901234.5678"),
                "ratio": 0.5,
                "at": dt.datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC),
                "day": dt.date(2024, 2, 29),
                "doc": '{\n "a": [1, 2]\n}',
                'Odd "name"': "x\ny",
                "paris": dt.datetime(2024, 7, 1, 12, tzinfo=UTC),
                "naive": dt.datetime(2024, 7, 1, 12, 30),
            },
            {**NULL_ROW, "ratio": float("nan")},
        ],
        schema=schema,
    )


def _fake_target(tmp_path, mode):
    exe = _script(tmp_path, "target-fake", FAKE_TARGET)
    received = tmp_path / "received.jsonl"
    dest = SingerDestination({"executable": exe, "config": {"mode": mode, "received": str(received), "api_token": SECRET}})
    return dest, received


def test_fake_target_gets_schema_records_and_states(tmp_path):
    dest, received = _fake_target(tmp_path, "echo_each")
    batch = _batch()
    commits = []
    settings = StreamSettings("src_stream", destination_table="dest_table", key_properties=["id"], replication_method="INCREMENTAL")
    result = dest.write(
        WriteRequest(settings, batch.schema),
        [Chunk(batch, {"b": 1}), Chunk(batch.slice(0, 1), {"b": 2})],
        lambda rows, state: commits.append((rows, state)),
    )
    assert result.rows_written == 3 and result.state == {"b": 2}
    assert commits == [(2, {"b": 1}), (3, {"b": 2})]
    msgs = [json.loads(line, parse_float=decimal.Decimal) for line in received.read_text().splitlines()]
    assert [m["type"] for m in msgs] == ["SCHEMA", "RECORD", "RECORD", "STATE", "RECORD", "STATE"]
    schema = msgs[0]
    assert schema["stream"] == "dest_table" and schema["key_properties"] == ["id"]
    assert schema["schema"]["properties"]["at"]["format"] == "date-time"
    assert msgs[1] == {
        "type": "RECORD",
        "stream": "dest_table",
        "record": {
            "id": 1,
            "amount": decimal.Decimal("12345678901234.5678"),
            "ratio": 0.5,
            "at": "2024-01-01T10:00:00.123456Z",
            "day": "2024-02-29",
            "doc": {"a": [1, 2]},
            'Odd "name"': "x\ny",
            "paris": "2024-07-01T12:00:00.000000Z",
            "naive": "2024-07-01T12:30:00.000",
        },
    }  # decimal digits exact, JSON parsed
    assert msgs[2]["record"] == NULL_ROW
    assert msgs[3] == {"type": "STATE", "value": {"jupyter_di": {"b": 1}, "jupyter_di_seq": 1}}
    assert msgs[2]["record"]["ratio"] is None  # NaN -> null
    assert "version" not in msgs[1]  # INCREMENTAL: no ACTIVATE_VERSION protocol
    assert json.loads((tmp_path / "received.jsonl.config").read_text())["api_token"] == SECRET


def test_fake_target_full_table_uses_activate_version_and_silent_target_confirms_at_exit(tmp_path):
    dest, received = _fake_target(tmp_path, "silent")  # never echoes state: a clean exit confirms all
    batch = _batch()
    commits = []
    dest.write(
        WriteRequest(StreamSettings("s", replication_method="FULL_TABLE"), batch.schema),
        [Chunk(batch, {"n": 1}), Chunk(batch, {"n": 2})],
        lambda rows, state: commits.append((rows, state)),
    )
    assert commits == [(4, {"n": 2})]
    msgs = [json.loads(line) for line in received.read_text().splitlines()]
    assert [m["type"] for m in msgs] == ["SCHEMA"] + ["RECORD"] * 4 + ["ACTIVATE_VERSION", "STATE"]
    version = msgs[5]["version"]
    assert msgs[5]["stream"] == "s" and {m["version"] for m in msgs[1:5]} == {version}
    assert msgs[6]["value"] == {"jupyter_di": {"n": 2}, "jupyter_di_seq": 1}


def test_fake_target_failure_is_redacted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="jupyter_di.singer")
    dest, _ = _fake_target(tmp_path, "exit3")
    commits = []
    batch = _batch()
    with pytest.raises(DIError) as err:
        dest.write(
            WriteRequest(StreamSettings("s"), batch.schema),
            [Chunk(batch, {"n": i}) for i in range(50)],
            lambda rows, state: commits.append(rows),
        )
    text = str(err.value)
    assert "exit code 3" in text and "cannot insert, token *** rejected" in text and SECRET not in text
    assert SECRET not in caplog.text and commits == []


def test_ignore_conflict_method_is_refused(tmp_path):
    dest, _ = _fake_target(tmp_path, "ok")
    settings = StreamSettings("s", unique_constraints=["id"], unique_conflict_method="IGNORE")
    with pytest.raises(ConfigError, match="IGNORE"):
        dest.write(WriteRequest(settings, _batch().schema), [])


# ---------------------------------------------------------------- real packages

TYPES_DDL = """
CREATE TABLE {t} (
  id integer PRIMARY KEY, name text, total numeric(10,2), price double precision, flag boolean,
  created date, updated_at timestamptz, doc jsonb, "Mixed Case" text)
"""


def _tap_config(pg_config, password=None):
    return {
        "host": pg_config["host"],
        "port": pg_config["port"],
        "user": pg_config["username"],
        "password": password if password is not None else (pg_config["password"] or "unused"),
        "database": pg_config["database"],
        "filter_schemas": ["public"],
    }


@pytest.fixture
def orders(pg_connect):
    conn = pg_connect()
    conn.execute(sql.SQL(TYPES_DDL).format(t=sql.Identifier("orders")))
    rows = [
        (
            i,
            f"name {i}" if i % 3 else None,
            decimal.Decimal(f"{i}.25"),
            i / 4,
            i % 2 == 0,
            dt.date(2024, 1, i),
            dt.datetime(2024, 1, i, 12, tzinfo=UTC),
            json.dumps({"i": i, "l": [i]}),
            f"m{i}",
        )
        for i in range(1, 8)
    ]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO orders VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)
    return rows


@pytest.mark.singer
@pytest.mark.postgres
def test_tap_postgres_discover_and_full_read(singer_exe, pg_config, orders):
    src = SingerSource({"executable": str(singer_exe("tap-postgres")), "config": _tap_config(pg_config)})
    catalog = src.discover()
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == "public-orders")
    assert entry["key_properties"] == ["id"]
    assert list(entry["schema"]["properties"]) == ["id", "name", "total", "price", "flag", "created", "updated_at", "doc", "Mixed Case"]

    table = src.read(ReadRequest(StreamSettings("public-orders"), batch_size=3)).read_all()
    got = sorted(table.to_pylist(), key=lambda r: r["id"])
    expected = [
        {
            "id": r[0],
            "name": r[1],
            "total": float(r[2]),
            "price": r[3],
            "flag": r[4],
            "created": r[5],
            "updated_at": r[6],
            "doc": json.dumps(json.loads(r[7]), separators=(",", ":")),
            "Mixed Case": r[8],
        }
        for r in orders
    ]
    assert got == expected


@pytest.mark.singer
@pytest.mark.postgres
def test_tap_postgres_incremental_read_from_bookmark(singer_exe, pg_config, orders):
    src = SingerSource({"executable": str(singer_exe("tap-postgres")), "config": _tap_config(pg_config)})
    settings = StreamSettings(
        "public-orders", columns=["id", "updated_at"], replication_method="INCREMENTAL", bookmark_properties=["updated_at"]
    )
    table = src.read(ReadRequest(settings, bookmark={"updated_at": "2024-01-05T12:00:00+00:00"})).read_all()
    assert table.column_names == ["id", "updated_at"]
    assert table.to_pylist() == [
        {"id": i, "updated_at": dt.datetime(2024, 1, i, 12, tzinfo=UTC)} for i in (5, 6, 7)
    ]  # inclusive bookmark, ordered by the tap


@pytest.fixture(scope="module")
def password_pg():
    """A PostgreSQL cluster that checks passwords (the shared one trusts everyone)."""
    started = postgres.start()  # its own /tmp dir: the postgres user cannot enter pytest's tmp_path
    data = Path(started["JDI_TEST_PG_DATA"])
    port = int(started["JDI_TEST_PG_PORT"])
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute("ALTER ROLE postgres PASSWORD 'right-password'")
    hba = data / "pg_hba.conf"
    hba.write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    mode = stat.S_IMODE(os.stat(data / "postgresql.conf").st_mode)
    hba.chmod(mode)
    with psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", password="right-password", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute("SELECT pg_reload_conf()")
    yield {"host": "127.0.0.1", "port": port, "username": "postgres", "password": "", "database": "postgres"}
    postgres.stop(str(data))
    shutil.rmtree(data.parent, ignore_errors=True)


@pytest.mark.singer
@pytest.mark.postgres
def test_tap_postgres_wrong_password_is_connection_failed_without_password(singer_exe, password_pg, caplog):
    caplog.set_level(logging.INFO, logger="jupyter_di.singer")
    wrong = "Wr0ng-" + SECRET
    src = SingerSource({"executable": str(singer_exe("tap-postgres")), "config": _tap_config(password_pg, wrong)})
    with pytest.raises(ConnectionFailed) as err:
        src.discover()
    text = str(err.value)
    assert "password authentication failed" in text
    assert wrong not in text and SECRET not in text and wrong not in caplog.text


def _arrow_rows():
    schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("name", pa.string()),
            pa.field("amount", pa.decimal128(10, 2)),
            pa.field("at", pa.timestamp("us", tz="UTC")),
            pa.field("doc", pa.string(), metadata={LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}),
        ]
    )
    rows = [
        {
            "id": i,
            "name": f"n{i}" if i != 2 else None,
            "amount": decimal.Decimal(f"{i}.50"),
            "at": dt.datetime(2024, 3, i, 8, tzinfo=UTC),
            "doc": json.dumps({"k": i}),
        }
        for i in range(1, 6)
    ]
    return schema, rows


@pytest.mark.singer
def test_target_jsonl_receives_exactly_the_rows(singer_exe, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dest = SingerDestination(
        {"executable": str(singer_exe("target-jsonl")), "config": {"destination_path": str(out), "do_timestamp_file": False}}
    )
    schema, rows = _arrow_rows()
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    commits = []
    result = dest.write(
        WriteRequest(StreamSettings("src", destination_table="people", key_properties=["id"]), schema),
        [Chunk(batch.slice(0, 3), {"upto": 3}), Chunk(batch.slice(3), {"upto": 5})],
        lambda n, state: commits.append((n, state)),
    )
    assert result.rows_written == 5
    assert commits[-1] == (5, {"upto": 5})
    assert sorted(p.name for p in out.iterdir()) == ["people.jsonl"]
    written = [json.loads(line) for line in (out / "people.jsonl").read_text().splitlines()]
    assert written == [
        {
            "id": r["id"],
            "name": r["name"],
            "amount": float(r["amount"]),
            "at": r["at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "doc": {"k": r["id"]},
        }
        for r in rows
    ]


@pytest.mark.singer
@pytest.mark.postgres
def test_target_postgres_lands_rows_upserts_and_confirms_state(singer_exe, pg_config, pg_connect):
    config = {
        "host": pg_config["host"],
        "port": pg_config["port"],
        "user": pg_config["username"],
        "password": "unused",
        "database": pg_config["database"],
        "default_target_schema": "raw",
    }
    dest = SingerDestination({"executable": str(singer_exe("target-postgres")), "config": config})
    schema, rows = _arrow_rows()
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    settings = StreamSettings("src", destination_table="people", unique_constraints=["id"], replication_method="INCREMENTAL")
    commits = []
    dest.write(
        WriteRequest(settings, schema),
        [Chunk(batch.slice(0, 2), {"upto": 2}), Chunk(batch.slice(2), {"upto": 5})],
        lambda n, state: commits.append((n, state)),
    )
    assert commits == [(5, {"upto": 5})]  # the SDK target confirms state only when it drains (the end)

    # second run: ids 4,5 changed, 6 new -> upsert on the key
    changed = [dict(r, name=r["name"] + "!") for r in rows[3:]] + [dict(rows[0], id=6, name="n6")]
    dest.write(WriteRequest(settings, schema), [Chunk(pa.RecordBatch.from_pylist(changed, schema=schema), {"upto": 6})])
    conn = pg_connect()
    got = conn.execute("SELECT id, name, amount, at, doc FROM raw.people ORDER BY id").fetchall()
    UTC = None  # target-postgres stores date-time as timestamp without time zone: the UTC wall time
    assert got == [
        (1, "n1", decimal.Decimal("1.50"), dt.datetime(2024, 3, 1, 8, tzinfo=UTC), {"k": 1}),
        (2, None, decimal.Decimal("2.50"), dt.datetime(2024, 3, 2, 8, tzinfo=UTC), {"k": 2}),
        (3, "n3", decimal.Decimal("3.50"), dt.datetime(2024, 3, 3, 8, tzinfo=UTC), {"k": 3}),
        (4, "n4!", decimal.Decimal("4.50"), dt.datetime(2024, 3, 4, 8, tzinfo=UTC), {"k": 4}),
        (5, "n5!", decimal.Decimal("5.50"), dt.datetime(2024, 3, 5, 8, tzinfo=UTC), {"k": 5}),
        (6, "n6", decimal.Decimal("1.50"), dt.datetime(2024, 3, 1, 8, tzinfo=UTC), {"k": 1}),
    ]

    # FULL_TABLE: ACTIVATE_VERSION retires the older rows (hard_delete: true deletes them)
    full = StreamSettings("src", destination_table="people", key_properties=["id"], replication_method="FULL_TABLE")
    hard = SingerDestination({"executable": str(singer_exe("target-postgres")), "config": {**config, "hard_delete": True}})
    commits = []
    hard.write(WriteRequest(full, schema), [Chunk(batch.slice(0, 2), {"full": 1})], lambda n, s: commits.append((n, s)))
    assert commits == [(2, {"full": 1})]
    assert conn.execute("SELECT id, name FROM raw.people ORDER BY id").fetchall() == [(1, "n1"), (2, None)]


def test_fake_catalog_from_config_skips_discovery(fake_tap, tmp_path):
    catalog = fake_tap().discover()
    exe = _script(tmp_path, "tap-fake2", FAKE_TAP)
    src = SingerSource(
        {"executable": exe, "catalog": catalog, "catalog_flag": "--catalog", "config": {"mode": "bad_discover", "password": SECRET}}
    )
    assert src.discover(["items"])["streams"] == [catalog["streams"][0]]  # --discover would have failed
    assert src.read(ReadRequest(_items(columns=["id"]))).read_all().column("id").to_pylist() == [1, 2, 3, 4, 5]
