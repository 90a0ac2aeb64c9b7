"""The postgresql connector against a real server: discovery, reads, writes, state, safety."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal

import pyarrow as pa
import pytest

from jupyter_di.connectors import registry
from jupyter_di.connectors.base import JSON_LOGICAL_TYPE, LOGICAL_TYPE_KEY, Chunk, ReadRequest, StreamSettings, WriteRequest
from jupyter_di.connectors.catalog import find_stream
from jupyter_di.connectors.postgres import SPEC, PostgresDestination, PostgresSource
from jupyter_di.errors import ConfigError, ConnectionFailed, SchemaMismatch
from tests.support import postgres as pg_support

pytestmark = pytest.mark.postgres

UTC = dt.timezone.utc
JSON_FIELD_META = {LOGICAL_TYPE_KEY: JSON_LOGICAL_TYPE}


def read_all(config, settings, **kw) -> pa.Table:
    with PostgresSource(config) as src:
        return src.read(ReadRequest(settings, **kw)).read_all()


def write(config, settings, batches, states=None, state_key=None, on_commit=None):
    states = states or [None] * len(batches)
    schema = batches[0].schema if batches else pa.schema([])
    with PostgresDestination(config) as dst:
        return dst.write(WriteRequest(settings, schema, state_key=state_key), (Chunk(b, s) for b, s in zip(batches, states)), on_commit)


def rows(conn, query):
    return conn.execute(query).fetchall()


def test_spec_and_config_keys():
    assert registry.get("postgresql") is SPEC
    fields = {f.name: f for f in SPEC.config_schema}
    assert list(fields) == [
        "host",
        "port",
        "database",
        "username",
        "password",
        "schema",
        "sslmode",
        "connect_timeout",
        "page_rows",
        "slot_name",
        "publication",
        "slot_retained_warn_mb",
        "upsert_fillfactor",
    ]
    assert fields["port"].default == 5432 and fields["schema"].default == "public" and fields["connect_timeout"].default == 10
    assert SPEC.secret_fields() == ["password"]
    assert PostgresDestination.transactional is True


# -- discovery ------------------------------------------------------------------------------


def test_discover_ids_keys_types_and_odd_names(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, total numeric(12,2),"
        " qty integer, price double precision, paid boolean, doc jsonb, tags text[], day date, big numeric)"
    )
    conn.execute('CREATE TABLE "Mixed ""Case"" Tbl" ("Col One" int, "we""ird col" text, "a b" int, PRIMARY KEY ("a b", "Col One"))')
    conn.execute("CREATE SCHEMA sales")
    conn.execute("CREATE TABLE sales.items (sku text PRIMARY KEY, n int)")
    conn.execute("CREATE VIEW v_orders AS SELECT id, total FROM orders")
    with PostgresSource(pg_config) as src:
        catalog = src.discover()
    ids = sorted(e["tap_stream_id"] for e in catalog["streams"])
    assert ids == ['Mixed "Case" Tbl', "orders", "sales.items", "v_orders"]

    orders = find_stream(catalog, "orders")
    assert orders["key_properties"] == ["id"]
    props = orders["schema"]["properties"]
    assert list(props) == ["id", "updated_at", "total", "qty", "price", "paid", "doc", "tags", "day", "big"]
    assert props["id"]["type"] == ["null", "integer"]
    assert props["updated_at"] == {"type": ["null", "string"], "format": "date-time"}
    assert props["total"]["type"] == ["null", "number"] and props["total"]["multipleOf"] == 0.01
    assert props["paid"]["type"] == ["null", "boolean"]
    assert "object" in props["doc"]["type"]
    assert props["tags"] == {"type": ["null", "array"], "items": {"type": ["null", "string"]}}
    assert props["day"]["format"] == "date"
    assert props["big"]["type"] == ["null", "string"]  # unconstrained numeric stays exact, as text
    md = {tuple(m["breadcrumb"]): m["metadata"] for m in orders["metadata"]}
    assert md[()]["valid-replication-keys"] == ["id", "updated_at", "total", "qty", "price", "day", "big"]
    assert md[("properties", "total")]["sql-datatype"] == "numeric(12,2)"
    assert md[("properties", "updated_at")]["sql-datatype"] == "timestamp with time zone"
    assert md[("properties", "id")]["inclusion"] == "automatic"

    odd = find_stream(catalog, 'Mixed "Case" Tbl')
    assert odd["key_properties"] == ["a b", "Col One"]
    assert list(odd["schema"]["properties"]) == ["Col One", 'we"ird col', "a b"]
    assert find_stream(catalog, "sales.items")["key_properties"] == ["sku"]
    assert find_stream(catalog, "v_orders")["key_properties"] == []

    with PostgresSource(pg_config) as src:
        only = src.discover(["sales.items"])
    assert [e["tap_stream_id"] for e in only["streams"]] == ["sales.items"]


def test_discover_in_configured_schema_qualifies_public(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE SCHEMA sales")
    conn.execute("CREATE TABLE sales.items (sku text PRIMARY KEY)")
    conn.execute("CREATE TABLE public.t (a int)")
    conn.execute("INSERT INTO sales.items VALUES ('x')")
    config = dict(pg_config, schema="sales")
    with PostgresSource(config) as src:
        ids = sorted(e["tap_stream_id"] for e in src.discover()["streams"])
    assert ids == ["items", "public.t"]
    assert read_all(config, StreamSettings("items")).to_pylist() == [{"sku": "x"}]


# -- reading --------------------------------------------------------------------------------


def test_read_selected_columns_of_odd_table_and_other_schema(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute('CREATE TABLE "Mixed ""Case"" Tbl" ("Col One" int, "we""ird col" text, "a b" int)')
    conn.execute("""INSERT INTO "Mixed ""Case"" Tbl" VALUES (1, 'x', 10), (2, NULL, 20)""")
    conn.execute("CREATE SCHEMA sales")
    conn.execute("CREATE TABLE sales.items (sku text, n int)")
    conn.execute("INSERT INTO sales.items VALUES ('a', 1)")

    table = read_all(pg_config, StreamSettings('Mixed "Case" Tbl', columns=["a b", 'we"ird col']))
    assert table.schema.names == ['we"ird col', "a b"]  # stream order, only the selected ones
    assert sorted(table.to_pylist(), key=lambda r: r["a b"]) == [{'we"ird col': "x", "a b": 10}, {'we"ird col': None, "a b": 20}]
    assert read_all(pg_config, StreamSettings("sales.items")).to_pylist() == [{"sku": "a", "n": 1}]

    with pytest.raises(ConfigError, match="'nope' not found") as err:
        read_all(pg_config, StreamSettings("sales.items", columns=["sku", "nope"]))
    assert err.value.stream == "sales.items"
    with pytest.raises(ConfigError, match="table 'missing' not found"):
        read_all(pg_config, StreamSettings("missing"))


def test_read_types_and_empty_schema(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute(
        "CREATE TABLE t (i bigint, n numeric(12,2), u uuid, j jsonb, a int[], r real, big numeric, b bytea, iv interval,"
        " n18 numeric(18,6), n30 numeric(30,4))"
    )
    empty = read_all(pg_config, StreamSettings("t"))
    assert empty.num_rows == 0
    assert empty.schema.field("n").type == pa.decimal128(12, 2)
    assert empty.schema.field("j").metadata == JSON_FIELD_META
    conn.execute(
        "INSERT INTO t VALUES (1, 12.5, '1a2b3c4d-0000-0000-0000-000000000001', '{\"k\": [1, 2]}', '{1,NULL,3}', 1.5,"
        " 123456789012345678901234567890.123456789012, '\\x00ff', '1 day', -999999999999.999999, -12345678901234567890123456.7891)"
    )
    table = read_all(pg_config, StreamSettings("t"))
    assert table.schema.field("u").type == pa.string()
    assert table.schema.field("r").type == pa.float64()
    assert table.to_pylist() == [
        {
            "i": 1,
            "n": Decimal("12.50"),
            "u": "1a2b3c4d-0000-0000-0000-000000000001",
            "j": '{"k": [1, 2]}',
            "a": [1, None, 3],
            "r": 1.5,
            "big": "123456789012345678901234567890.123456789012",
            "b": b"\x00\xff",
            "iv": "1 day",
            "n18": Decimal("-999999999999.999999"),
            "n30": Decimal("-12345678901234567890123456.7891"),
        }
    ]
    assert table.schema.field("n30").type == pa.decimal128(30, 4)


def test_read_limit_and_batch_size(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
    with PostgresSource(pg_config) as src:
        reader = src.read(ReadRequest(StreamSettings("t"), batch_size=300))
        sizes = [b.num_rows for b in reader]
        assert sizes == [300, 300, 300, 100]
        sample = src.read(ReadRequest(StreamSettings("t"), limit=7)).read_all()
    assert sample.num_rows == 7


@pytest.fixture
def events(pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz, amount numeric(10,2), label text)")
    conn.execute(
        """INSERT INTO events VALUES
        (5, '2024-01-03T00:00:00Z', 5.00, 'e'),
        (1, '2024-01-01T00:00:00Z', 1.00, 'a'),
        (4, '2024-01-02T00:00:00Z', 4.50, 'd'),
        (2, '2024-01-02T00:00:00Z', 2.25, 'b'),
        (3, '2024-01-02T00:00:00Z', 3.00, 'c'),
        (6, NULL, 6.00, 'f')"""
    )
    return conn


def test_incremental_read_inclusive_ordered(pg_config, events):
    settings = StreamSettings(
        "events", replication_method="INCREMENTAL", bookmark_properties=["updated_at"], key_properties=["id"], columns=["id", "updated_at"]
    )
    table = read_all(pg_config, settings, bookmark={"updated_at": "2024-01-02T00:00:00+00:00"}, batch_size=2)
    assert table.to_pylist() == [
        {"id": 2, "updated_at": dt.datetime(2024, 1, 2, tzinfo=UTC)},
        {"id": 3, "updated_at": dt.datetime(2024, 1, 2, tzinfo=UTC)},
        {"id": 4, "updated_at": dt.datetime(2024, 1, 2, tzinfo=UTC)},
        {"id": 5, "updated_at": dt.datetime(2024, 1, 3, tzinfo=UTC)},
    ]
    # a bookmark in another time zone is the same instant
    later = read_all(pg_config, settings, bookmark={"updated_at": "2024-01-02T01:00:00+01:00"})
    assert [r["id"] for r in later.to_pylist()] == [2, 3, 4, 5]
    # no bookmark: everything, ordered by (bookmark, key), NULL bookmarks last
    assert [r["id"] for r in read_all(pg_config, settings).to_pylist()] == [1, 2, 3, 4, 5, 6]


def test_incremental_read_keyset_tuple_and_decimal_bookmark(pg_config, events):
    settings = StreamSettings("events", replication_method="INCREMENTAL", bookmark_properties=["updated_at", "id"])
    after = read_all(pg_config, settings, bookmark={"updated_at": "2024-01-02T00:00:00Z", "id": 3})
    assert [r["id"] for r in after.to_pylist()] == [3, 4, 5]  # (b, k) >= (v, 3): inclusive on the tuple
    by_amount = StreamSettings("events", replication_method="INCREMENTAL", bookmark_properties=["amount"], key_properties=["id"])
    table = read_all(pg_config, by_amount, bookmark={"amount": "3.00"})
    assert [(r["id"], r["amount"]) for r in table.to_pylist()] == [
        (3, Decimal("3.00")),
        (4, Decimal("4.50")),
        (5, Decimal("5.00")),
        (6, Decimal("6.00")),
    ]


def test_incremental_missing_columns_are_config_errors(pg_config, events):
    bad_bookmark = StreamSettings("events", replication_method="INCREMENTAL", bookmark_properties=["changed_at"])
    with pytest.raises(ConfigError, match="bookmark column 'changed_at' not found") as err:
        read_all(pg_config, bad_bookmark)
    assert "updated_at" in err.value.fix
    bad_key = StreamSettings("events", replication_method="INCREMENTAL", bookmark_properties=["updated_at"], key_properties=["nokey"])
    with pytest.raises(ConfigError, match="key column 'nokey' not found"):
        read_all(pg_config, bad_key)
    by_time = StreamSettings("events", replication_method="INCREMENTAL", bookmark_properties=["updated_at"])
    with pytest.raises(ConfigError, match="bookmark value 'yesterday-ish' for 'updated_at' is not a valid timestamp with time zone") as err:
        read_all(pg_config, by_time, bookmark={"updated_at": "yesterday-ish"})
    assert err.value.stream == "events" and "reset the stream's state" in err.value.fix
    with pytest.raises(ConfigError, match="needs bookmark_properties"):
        read_all(pg_config, StreamSettings("events", replication_method="INCREMENTAL"))


def test_keyset_pages_read_the_same_rows_in_the_same_order_as_one_query(pg_config, events, monkeypatch):
    from jupyter_di.connectors.postgres import adbc as postgres_adbc

    queries: list[str] = []
    stream = postgres_adbc.AdbcSession.stream

    def spy(self, query, hint):
        queries.append(query)
        return stream(self, query, hint)

    monkeypatch.setattr(postgres_adbc.AdbcSession, "stream", spy)
    s = StreamSettings("events", replication_method="INCREMENTAL", bookmark_properties=["updated_at"], key_properties=["id"])
    one_query = read_all(pg_config, s)
    assert one_query.column("id").to_pylist() == [1, 2, 3, 4, 5, 6] and len(queries) == 1  # NULL bookmark last
    queries.clear()
    paged = read_all({**pg_config, "page_rows": 2}, s)
    assert paged.equals(one_query)
    # [1, 2] [3, 4] (a page boundary inside the tie at 2024-01-02) [5] (short: the last page), then the NULL row
    assert len(queries) == 4
    assert all("LIMIT 2" in q for q in queries[:3]) and "LIMIT" not in queries[3] and not any("OFFSET" in q for q in queries)
    assert all("jupyter_di.after" in q for q in queries[1:3]) and "IS NULL" in queries[3]

    queries.clear()
    since = {"updated_at": "2024-01-02T00:00:00+00:00"}
    assert read_all({**pg_config, "page_rows": 2}, s, bookmark=since).equals(read_all(pg_config, s, bookmark=since))
    assert read_all(pg_config, s, bookmark=since).column("id").to_pylist() == [2, 3, 4, 5]
    with pytest.raises(ConfigError, match="page_rows must be 0 or more, got -1"):
        read_all({**pg_config, "page_rows": -1}, s)


def test_keyset_pages_over_two_bookmark_columns_and_typed_keys(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TABLE ledger (code text, ref uuid, day date, amount numeric(12,2), at timestamp, PRIMARY KEY (code, ref))")
    conn.execute(
        "INSERT INTO ledger SELECT chr(97 + g % 3) || 'é', md5(g::text)::uuid, DATE '2024-01-01' + g % 4, g % 5 + 0.25, "
        "TIMESTAMP '2024-01-01 00:00:00.000001' + (g % 2) * interval '1 microsecond' FROM generate_series(1, 41) g"
    )
    s = StreamSettings(
        "ledger", replication_method="INCREMENTAL", bookmark_properties=["day", "amount"], key_properties=["at", "code", "ref"]
    )
    one_query = read_all(pg_config, s)
    assert one_query.num_rows == 41
    for page_rows in (1, 4, 40, 41, 100):
        assert read_all({**pg_config, "page_rows": page_rows}, s).equals(one_query), page_rows
    since = {"day": "2024-01-03", "amount": "2.25"}
    from_bookmark = read_all(pg_config, s, bookmark=since)
    assert 0 < from_bookmark.num_rows < 41
    assert read_all({**pg_config, "page_rows": 3}, s, bookmark=since).equals(from_bookmark)


def test_a_bookmark_column_that_cannot_be_ordered_is_refused_by_name(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TYPE stage AS ENUM ('new', 'paid', 'shipped')")
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, doc json, spot point, at timestamptz, st stage)")
    conn.execute("INSERT INTO docs VALUES (1, '{}', '(0,0)', '2024-01-01Z', 'paid'), (2, '[]', '(1,1)', '2024-01-02Z', 'shipped')")
    s = StreamSettings("docs", replication_method="INCREMENTAL", bookmark_properties=["doc"], key_properties=["id"])
    with pytest.raises(ConfigError, match=r"bookmark column 'doc' \(json\) cannot be ordered, so cannot hold a bookmark") as err:
        read_all(pg_config, s)
    assert err.value.stream == "docs" and err.value.fix == "pick bookmark_properties among: id, at."
    s = StreamSettings("docs", replication_method="INCREMENTAL", bookmark_properties=["at", "spot"], key_properties=["id"])
    with pytest.raises(ConfigError, match=r"bookmark column 'spot' \(point\) cannot be ordered"):
        read_all(pg_config, s)
    # the server orders an enum (by its declared order), so it can hold a bookmark
    by_stage = StreamSettings("docs", replication_method="INCREMENTAL", bookmark_properties=["st"], key_properties=["id"])
    assert read_all(pg_config, by_stage, bookmark={"st": "shipped"}).column("id").to_pylist() == [2]


def test_an_incremental_read_from_a_bookmark_does_not_import_pandas(pg_config, events):
    """pyarrow imports pandas (0.15-0.2 s, 40 MB) on its first conversion of a zoned timestamp to Python."""
    code = (
        "import json, sys\n"
        "from jupyter_di.connectors.base import ReadRequest, StreamSettings\n"
        "from jupyter_di.connectors.postgres import PostgresSource\n"
        "s = StreamSettings('events', replication_method='INCREMENTAL', bookmark_properties=['updated_at'], key_properties=['id'])\n"
        "with PostgresSource(json.loads(sys.argv[1])) as src:\n"
        "    table = src.read(ReadRequest(s, bookmark={'updated_at': '2024-01-03T00:00:00+00:00'})).read_all()\n"
        "print(table.num_rows, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(pg_config)], capture_output=True, text=True, check=True).stdout.split()
    expected = len(
        read_all(
            pg_config,
            StreamSettings("events", replication_method="INCREMENTAL", bookmark_properties=["updated_at"], key_properties=["id"]),
            bookmark={"updated_at": "2024-01-03T00:00:00+00:00"},
        )
    )
    assert expected > 0 and out == [str(expected), "False"]


# -- writing --------------------------------------------------------------------------------


def people(ids, names, extra=None):
    cols = {"id": pa.array(ids, pa.int64()), "name": pa.array(names, pa.string())}
    cols.update(extra or {})
    return pa.RecordBatch.from_pydict(cols)


def test_tables_created_for_upserts_leave_room_for_in_place_updates(pg_config, pg_connect):
    conn = pg_connect()
    upsert = StreamSettings("people", replication_method="INCREMENTAL", unique_constraints=["id"])
    write(pg_config, upsert, [people([1, 2], ["a", "b"])])
    write(pg_config, StreamSettings("plain"), [people([1], ["a"])])
    write(
        {**pg_config, "upsert_fillfactor": 100},
        StreamSettings("packed", replication_method="INCREMENTAL", unique_constraints=["id"]),
        [people([1], ["a"])],
    )
    options = dict(rows(conn, "SELECT relname, reloptions FROM pg_class WHERE relname IN ('people', 'plain', 'packed')"))
    assert options == {"people": ["fillfactor=90"], "plain": None, "packed": None}
    write(pg_config, upsert, [people([2, 3], ["B", "c"])])  # upserts work as before on it
    assert rows(conn, "SELECT id, name FROM people ORDER BY id") == [(1, "a"), (2, "B"), (3, "c")]
    with pytest.raises(ConfigError, match="upsert_fillfactor must be between 10 and 100, got 5"):
        write({**pg_config, "upsert_fillfactor": 5}, upsert, [people([4], ["d"])])


def test_full_table_twice_is_exactly_the_source(pg_config, pg_connect):
    settings = StreamSettings("people", destination_table="People Copy")
    first = [people([1, 2], ["a", "b"]), people([3], ["c"])]
    commits = []
    result = write(pg_config, settings, first, on_commit=lambda n, s: commits.append(n))
    assert result.rows_written == 3 and commits == [3]
    second = [people([1, 2], ["a", "B"]), people([4], ["d"])]
    write(pg_config, settings, second)
    conn = pg_connect()
    assert rows(conn, 'SELECT id, name FROM "People Copy" ORDER BY id') == [(1, "a"), (2, "B"), (4, "d")]


def test_full_table_failure_midway_keeps_old_rows_and_state(pg_config, pg_connect):
    settings = StreamSettings("people")
    write(pg_config, settings, [people([1], ["old"])], states=[{"v": 1}], state_key="p/b/people")

    def failing():
        yield Chunk(people([7, 8], ["new", "new"]), {"v": 2})
        raise RuntimeError("source broke")

    with PostgresDestination(pg_config) as dst:
        with pytest.raises(RuntimeError, match="source broke"):
            dst.write(WriteRequest(settings, people([1], ["x"]).schema, state_key="p/b/people"), failing())
        assert dst.load_state("p/b/people") == {"v": 1}
    assert rows(pg_connect(), "SELECT id, name FROM people") == [(1, "old")]


def test_upsert_update_vs_ignore(pg_config, pg_connect):
    conn = pg_connect()
    for method in ("UPDATE", "IGNORE"):
        settings = StreamSettings(
            "people",
            replication_method="INCREMENTAL",
            destination_table=f"p_{method}",
            unique_constraints=["id"],
            unique_conflict_method=method,
        )
        write(pg_config, settings, [people([1, 2], ["a", "b"])])
        # id 2 changes, id 3 is new and appears twice in the batch
        write(pg_config, settings, [people([2, 3, 3], ["b2", "c1", "c2"])])
    assert rows(conn, 'SELECT id, name FROM "p_UPDATE" ORDER BY id') == [(1, "a"), (2, "b2"), (3, "c2")]
    assert rows(conn, 'SELECT id, name FROM "p_IGNORE" ORDER BY id') == [(1, "a"), (2, "b"), (3, "c1")]


def test_upsert_into_existing_table_with_other_types(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TABLE people (id integer, name varchar(20), doc jsonb, extra text DEFAULT 'kept')")
    conn.execute("""INSERT INTO people VALUES (1, 'a', '{"x": 1}', 'e1')""")
    settings = StreamSettings("people", replication_method="INCREMENTAL", unique_constraints=["id"])
    batch = people([1, 2], ["A", "b"], {"doc": pa.array(['{"x": 2}', "[]"])})  # doc is an unmarked string here
    write(pg_config, settings, [batch])
    assert rows(conn, "SELECT id, name, doc, extra FROM people ORDER BY id") == [(1, "A", {"x": 2}, "e1"), (2, "b", [], "kept")]
    assert rows(conn, "SELECT count(*) FROM pg_indexes WHERE tablename = 'people'") == [(1,)]  # unique index added


def test_upsert_on_duplicated_existing_rows_is_clear(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute("CREATE TABLE people (id bigint, name text)")
    conn.execute("INSERT INTO people VALUES (1, 'a'), (1, 'b')")
    with pytest.raises(SchemaMismatch, match=r"cannot upsert on \(id\)"):
        write(pg_config, StreamSettings("people", unique_constraints=["id"]), [people([1], ["c"])])
    assert rows(conn, "SELECT count(*) FROM people") == [(2,)]


def test_auto_add_new_fields_on_and_off(pg_config, pg_connect):
    conn = pg_connect()
    write(pg_config, StreamSettings("people", replication_method="INCREMENTAL"), [people([1], ["a"])])
    wider = people([2], ["b"], {"Email Addr": pa.array(["b@x"]), "age": pa.array([30], pa.int32())})
    with pytest.raises(SchemaMismatch) as err:
        write(pg_config, StreamSettings("people", replication_method="INCREMENTAL", auto_add_new_fields=False), [wider])
    assert "'Email Addr', 'age'" in str(err.value) and "auto_add_new_fields" in str(err.value)
    assert rows(conn, "SELECT id FROM people") == [(1,)]
    write(pg_config, StreamSettings("people", replication_method="INCREMENTAL"), [wider])
    assert rows(conn, 'SELECT id, name, "Email Addr", age FROM people ORDER BY id') == [(1, "a", None, None), (2, "b", "b@x", 30)]
    # columns the table has but the batch lacks get NULL
    write(
        pg_config,
        StreamSettings("people", replication_method="INCREMENTAL"),
        [pa.RecordBatch.from_pydict({"id": pa.array([3], pa.int64())})],
    )
    assert rows(conn, 'SELECT id, name, "Email Addr" FROM people WHERE id = 3') == [(3, None, None)]


def test_state_commits_with_rows_and_failure_keeps_last_commit(pg_config, pg_connect, monkeypatch):
    from jupyter_di.connectors.postgres import write as postgres_write

    monkeypatch.setattr(postgres_write, "COPY_BYTES", 1)  # one COPY and one commit per chunk
    settings = StreamSettings("people", replication_method="INCREMENTAL", unique_constraints=["id"])
    key = "pipe/block/people"
    commits = []
    write(
        pg_config,
        settings,
        [people([1], ["a"]), people([2], ["b"])],
        states=[{"bookmark": 1}, {"bookmark": 2}],
        state_key=key,
        on_commit=lambda n, s: commits.append((n, s)),
    )
    assert commits == [(1, {"bookmark": 1}), (2, {"bookmark": 2})]
    with PostgresDestination(pg_config) as dst:
        assert dst.load_state(key) == {"bookmark": 2}
        assert dst.load_state("other") is None
    conn = pg_connect()
    assert rows(conn, "SELECT state_key, state FROM _jupyter_di_state") == [(key, {"bookmark": 2})]

    # the second chunk cannot be stored (text into an integer column): chunk 1 stays, chunk 2 does not
    conn.execute("ALTER TABLE people ADD COLUMN n integer")
    good = people([3], ["c"])
    bad = people([4], ["d"], {"n": pa.array(["not a number"])})
    with pytest.raises(SchemaMismatch, match="could not write into table public.people"):
        write(pg_config, settings, [good, bad], states=[{"bookmark": 3}, {"bookmark": 4}], state_key=key)
    with PostgresDestination(pg_config) as dst:
        assert dst.load_state(key) == {"bookmark": 3}
        dst.clear_state(key)
        assert dst.load_state(key) is None
    assert rows(conn, "SELECT id FROM people ORDER BY id") == [(1,), (2,), (3,)]

    # small chunks are merged per COPY: one commit carrying the last chunk's state
    monkeypatch.setattr(postgres_write, "COPY_BYTES", 8 * 1024 * 1024)
    commits.clear()
    write(
        pg_config,
        settings,
        [people([5], ["e"]), people([6], ["f"])],
        states=[{"bookmark": 5}, {"bookmark": 6}],
        state_key=key,
        on_commit=lambda n, s: commits.append((n, s)),
    )
    assert commits == [(2, {"bookmark": 6})]
    assert rows(conn, "SELECT id FROM people WHERE id >= 5 ORDER BY id") == [(5,), (6,)]


def test_empty_stream_creates_table_in_new_schema(pg_config, pg_connect):
    config = dict(pg_config, schema="Raw Zone")
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("doc", pa.string(), metadata=JSON_FIELD_META)])
    with PostgresDestination(config) as dst:
        result = dst.write(WriteRequest(StreamSettings("things"), schema, state_key="k"), iter([]))
        assert result.rows_written == 0
    assert rows(
        pg_connect(),
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'Raw Zone' AND table_name = 'things' ORDER BY ordinal_position",
    ) == [
        ("id", "bigint"),
        ("doc", "jsonb"),
    ]


def test_crafted_column_name_is_a_literal_column(pg_config, pg_connect):
    evil = 'x" int); create table pwned(x int); --'
    batch = pa.RecordBatch.from_pydict({"id": pa.array([1], pa.int64()), evil: pa.array(["v"])})
    settings = StreamSettings("evil", unique_constraints=["id"], destination_table='t"; drop table x; --')
    write(pg_config, settings, [batch])
    write(pg_config, StreamSettings("evil", destination_table="plain"), [batch])
    conn = pg_connect()
    assert rows(conn, "SELECT count(*) FROM pg_class WHERE relname = 'pwned'") == [(0,)]
    back = read_all(pg_config, StreamSettings('t"; drop table x; --', columns=[evil]))
    assert back.to_pylist() == [{evil: "v"}]
    assert read_all(pg_config, StreamSettings("plain")).to_pylist() == [{"id": 1, evil: "v"}]


def test_names_over_63_bytes_are_refused_not_truncated(pg_config, pg_connect):
    long_name = "é" * 32  # 64 bytes
    batch = pa.RecordBatch.from_pydict({"id": pa.array([1], pa.int64()), long_name: pa.array(["v"])})
    with pytest.raises(SchemaMismatch, match="exceed PostgreSQL's 63-byte identifier limit"):
        write(pg_config, StreamSettings("t"), [batch])
    assert rows(pg_connect(), "SELECT count(*) FROM pg_class WHERE relname = 't'") == [(0,)]


def test_nul_characters_are_stripped_with_one_warning(pg_config, pg_connect):
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([1, 2, 3], pa.int64()),
            pa.array(["a\x00b", "\x00\x00", None]),
            pa.array(['{"k": "x\\u0000y\\u0000\\u0000"}', '{"k": "\\\\u0000"}', None]),
        ],
        schema=pa.schema(
            [pa.field("id", pa.int64()), pa.field("note", pa.string()), pa.field("doc", pa.string(), metadata=JSON_FIELD_META)]
        ),
    )
    with pytest.warns(UserWarning) as caught:
        write(pg_config, StreamSettings("nuls"), [batch])
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "stream 'nuls', column 'doc'" in messages[0] and "from 1 value(s)" in messages[0]
    assert "stream 'nuls', column 'note'" in messages[1] and "from 2 value(s)" in messages[1]
    conn = pg_connect()
    assert rows(conn, "SELECT id, note, doc FROM nuls ORDER BY id") == [
        (1, "ab", {"k": "xy"}),
        (2, "", {"k": "\\u0000"}),  # an escaped backslash is not a NUL
        (3, None, None),
    ]


# -- connection errors ----------------------------------------------------------------------


def test_wrong_password_is_connection_failed_without_the_password(password_server):
    PASSWORD = pg_support.PASSWORD  # noqa: N806

    good = dict(password_server, password=PASSWORD)
    with PostgresSource(good) as src:
        src.check()
    bad = dict(password_server, password="wrong-" + PASSWORD)
    for attempt in (
        lambda: PostgresSource(bad).discover(),
        lambda: PostgresSource(bad).read(ReadRequest(StreamSettings("t"))),
        lambda: PostgresDestination(bad).write(WriteRequest(StreamSettings("t"), people([1], ["a"]).schema), iter([])),
        lambda: PostgresDestination(bad).load_state("k"),
    ):
        with pytest.raises(ConnectionFailed) as err:
            attempt()
        text = str(err.value)
        assert "password authentication failed" in text and "127.0.0.1" in text
        assert PASSWORD not in text and PASSWORD not in repr(err.value) and err.value.fix


def test_unreachable_port_is_connection_failed(pg_config):
    config = dict(pg_config, port=pg_support.free_port(), password="hunter2-secret", connect_timeout=2)
    with pytest.raises(ConnectionFailed) as err:
        PostgresSource(config).check()
    assert f"could not connect to PostgreSQL at 127.0.0.1:{config['port']}" in str(err.value)
    assert "refused" in str(err.value).lower() and "hunter2-secret" not in str(err.value)
    with pytest.raises(ConnectionFailed):
        write(config, StreamSettings("t"), [people([1], ["a"])])
    with pytest.raises(ConfigError, match="port must be a whole number"):
        PostgresSource(dict(pg_config, port="abc"))
    with pytest.raises(ConfigError, match="'sometimes' is not a libpq sslmode"):
        PostgresSource(dict(pg_config, sslmode="sometimes"))
    with pytest.raises(ConfigError, match="missing host, database"):
        PostgresDestination({"username": "u"})
    assert "hunter2" not in repr(PostgresSource(config)._cfg)


# -- PostgreSQL -> PostgreSQL type round trip -------------------------------------------------

ROUND_TRIP_DDL = """
CREATE TABLE src (
  id bigint PRIMARY KEY, i integer, n numeric(12,2), d double precision, tz timestamptz, ts timestamp,
  day date, flag boolean, js json, jb jsonb, words text[], nums int[], note text
)"""
ROUND_TRIP_ROWS = """
INSERT INTO src VALUES
 (1, -2147483648, 1234567890.12, 1.5e300, '2024-03-01 12:34:56.789012+00', '1999-12-31 23:59:59.999999', '0001-01-01',
  true, '{"a": [1, 2, {"b": null}]}', '{"é": "🙂", "q": "\\"quoted\\""}', '{"x", "y z", "quo\\"te", NULL}', '{1, NULL, -3}',
  'unicode é ü 中文 🙂 ''single'' "double" back\\slash'),
 (9223372036854775807, 2147483647, -0.01, -0.0, '1970-01-01 00:00:00+00', '2038-01-19 03:14:08', '9999-12-31',
  false, '[]', '{}', '{}', '{}', ''),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
"""


def test_type_round_trip_postgres_to_postgres(pg_config, pg_connect):
    conn = pg_connect()
    conn.execute(ROUND_TRIP_DDL)
    conn.execute(ROUND_TRIP_ROWS)
    settings = StreamSettings("src", destination_table="dst", unique_constraints=["id"])
    with PostgresSource(pg_config) as src, PostgresDestination(dict(pg_config, schema="copy")) as dst:
        reader = src.read(ReadRequest(settings, batch_size=2))
        result = dst.write(WriteRequest(settings, reader.schema), (Chunk(b) for b in reader))
    assert result.rows_written == 3
    types = rows(
        conn,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'copy.dst'::regclass AND attnum > 0 ORDER BY attnum",
    )
    assert types == [
        ("id", "bigint"),
        ("i", "integer"),
        ("n", "numeric(12,2)"),
        ("d", "double precision"),
        ("tz", "timestamp with time zone"),
        ("ts", "timestamp without time zone"),
        ("day", "date"),
        ("flag", "boolean"),
        ("js", "jsonb"),
        ("jb", "jsonb"),
        ("words", "text[]"),
        ("nums", "integer[]"),
        ("note", "text"),
    ]
    cols = "id, i, n, d, tz, ts, day, flag, js::jsonb, jb, words, nums, note"
    source_rows = rows(conn, f"SELECT {cols} FROM src ORDER BY id")
    copied_rows = rows(conn, f"SELECT {cols} FROM copy.dst ORDER BY id")
    assert copied_rows == source_rows
    assert copied_rows[0][10] == ["x", "y z", 'quo"te', None] and copied_rows[0][12].endswith('"double" back\\slash')
    assert copied_rows[1] == (3,) + (None,) * 12
    # the exact text of every value, as PostgreSQL prints it, is the same too
    as_text = ", ".join(f"{c}::text" for c in cols.split(", "))
    assert rows(conn, f"SELECT {as_text} FROM copy.dst ORDER BY id") == rows(conn, f"SELECT {as_text} FROM src ORDER BY id")
