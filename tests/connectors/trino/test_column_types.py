"""Trino's side of the schema-conflict view and of ``column_types`` (issue 21's follow-up): the destination
describes its tables through ``information_schema.columns``, maps columns as its writer does, and
creates the overridden types on both load paths; a bad override is one clear error before anything
is written.  Against the real Trino server of the test suite (memory, Iceberg and Delta Lake on S3)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from jupyter_di.connectors.base import StreamSettings
from jupyter_di.connectors.trino import TrinoDestination
from jupyter_di.errors import ConfigError, SchemaMismatch
from jupyter_di.integration.schema_conflicts import NEW, OVERRIDE, TYPE, compare
from tests.connectors.trino.test_trino import query, rows_of, s3_credentials, tables_of, trino_config, with_path, write  # noqa: F401
from tests.support.notebooks import run_notebook, write_notebook

pytestmark = pytest.mark.trino

UTC = dt.timezone.utc
STREAM = pa.schema([("id", pa.int32()), ("amount", pa.float64()), ("note", pa.string()), ("added", pa.int64())])
OVERRIDES = {"id": "bigint", "amount": "decimal(18,2)", "note": "varchar(20)", "ts": "timestamp(3) with time zone"}
CREATED = {"id": "bigint", "amount": "decimal(18,2)", "note": "varchar(20)", "ts": "timestamp(3) with time zone"}


def columns_of(query, config: dict, table: str = "t") -> dict[str, str]:
    return dict(
        query(
            f'SELECT column_name, data_type FROM "{config["catalog"]}".information_schema.columns '
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [config["schema"], table],
        )
    )


def make_table(query, config: dict, columns: str, table: str = "orders") -> None:
    query(f'CREATE SCHEMA IF NOT EXISTS "{config["catalog"]}"."{config["schema"]}"')
    query(f'CREATE TABLE "{config["catalog"]}"."{config["schema"]}"."{table}" ({columns})')


def orders(ids: list[int], notes: list[str], micros: int = 0) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "id": pa.array(ids, pa.int32()),
            "amount": pa.array([12.5 + i for i in ids], pa.float64()),
            "note": pa.array(notes),
            "ts": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123000 + micros, tzinfo=UTC)] * len(ids), pa.timestamp("us", "UTC")),
        }
    )


# -- describe_table and the conflicts view -------------------------------------------------------


def test_describe_table_reads_information_schema_with_trinos_case(trino_config, query) -> None:
    make_table(query, trino_config, 'id bigint, amount decimal(10,2), "Note" varchar', table="Orders")
    with TrinoDestination(trino_config) as dest:
        described = dest.describe_table("ORDERS")
        assert [(c.name, c.type) for c in described or []] == [("id", "bigint"), ("amount", "decimal(10,2)"), ("note", "varchar")]
        assert dest.describe_table("nope") is None
        assert dest.describe_table("orders'; DROP TABLE orders; --") is None  # a bound parameter, not SQL
    assert tables_of(query, trino_config) == ["orders"]
    with TrinoDestination(trino_config | {"schema": "no_such_schema_" + uuid.uuid4().hex[:6]}) as dest:
        assert dest.describe_table("orders") is None


@pytest.mark.parametrize("catalog", ["iceberg", "delta_s3"])
def test_the_conflicts_view_says_what_the_next_run_does_and_the_run_does_it(catalog, trino_config, query) -> None:
    config = trino_config | {"catalog": catalog}
    make_table(query, config, "id bigint, amount decimal(10,2), note integer, gone varchar")
    settings = StreamSettings("orders", unique_constraints=["id"], replication_method="INCREMENTAL")
    with TrinoDestination(config) as dest:
        found = compare(dest, "trino", settings, STREAM, ["gone"])
    by = {c.column: c for c in found.conflicts}
    assert found.exists and set(by) == {"id", "amount", "note", "added", "gone"}
    assert by["id"].kind == TYPE and not by["id"].fails and by["id"].outcome == "cast to bigint on write: every integer value fits"
    assert by["amount"].fails and by["amount"].stream_type == "double" and by["amount"].table_type == "decimal(10,2)"
    assert by["note"].fails and by["note"].stream_type == "varchar" and by["note"].table_type == "integer"
    assert by["added"].kind == NEW and by["added"].outcome == "added as bigint on the next run (auto_add_new_fields)"
    assert by["gone"].outcome.startswith("set to NULL in the rows the next run upserts (the source dropped it)")
    # an override for the new column is what it is added as; one on an existing column is reported as not applied
    settings.column_types = {"added": "decimal(18,2)", "amount": "decimal(18,2)"}
    with TrinoDestination(config) as dest:
        by = {c.column: c for c in compare(dest, "trino", settings, STREAM, []).conflicts}
    assert by["added"].outcome == "added as decimal(18,2) on the next run (auto_add_new_fields)"
    assert by["amount"].kind == OVERRIDE and "the table keeps decimal(10,2)" in by["amount"].outcome
    # the run does what the view said: the new column gets the override, existing columns keep their types
    batch = pa.record_batch(
        {"id": pa.array([1], pa.int32()), "amount": [2.5], "note": pa.array(["7"]), "added": pa.array([3], pa.int64())}, schema=STREAM
    )
    write(
        config, [batch], table="orders", replication_method="INCREMENTAL", column_types=settings.column_types
    )  # appended: Delta has no MERGE here
    assert columns_of(query, config, "orders") == {
        "id": "bigint",
        "amount": "decimal(10,2)",
        "note": "integer",
        "gone": "varchar",
        "added": "decimal(18,2)",
    }
    assert rows_of(query, config, "orders") == [[1, Decimal("2.50"), 7, None, Decimal("3.00")]]


def test_a_table_not_there_yet_is_said_so(trino_config) -> None:
    with TrinoDestination(trino_config) as dest:
        found = compare(dest, "trino", StreamSettings("orders"), STREAM, [])
    assert found.exists is False and "does not exist yet" in found.note


# -- column_types creates the asked types ----------------------------------------------------------


@pytest.mark.parametrize("path", ["sql", "files"])
@pytest.mark.parametrize("method", ["FULL_TABLE", "INCREMENTAL"])
def test_overrides_create_the_asked_types_on_both_load_paths(path, method, trino_config, trino_server, query) -> None:
    """memory keeps every Trino type as asked; the Parquet path's files hold the mapped types (double,
    varchar, integer, text of the timestamp) and the publish statement casts them to the overrides."""
    config = with_path(trino_config | {"catalog": "memory"}, trino_server, path)
    write(config, [orders([1, 2], ["a", "é☃"])], replication_method=method, column_types=OVERRIDES)
    assert columns_of(query, config) == CREATED
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=dt.timezone.utc)
    got = rows_of(query, config)
    assert [r[:3] for r in got] == [[1, Decimal("13.50"), "a"], [2, Decimal("14.50"), "é☃"]]
    assert all(r[3] == when for r in got)
    if method == "INCREMENTAL":  # a column added later gets its override too (ALTER TABLE ADD COLUMN)
        later = orders([3], ["c"]).append_column("code", pa.array([7], pa.int16()))
        write(config, [later], replication_method=method, column_types=OVERRIDES | {"code": "varchar(5)"})
        assert columns_of(query, config) == CREATED | {"code": "varchar(5)"}
        assert rows_of(query, config, order="id")[-1][:3] == [3, Decimal("15.50"), "c"] and rows_of(query, config, order="id")[-1][4] == "7"


@pytest.mark.parametrize("path", ["sql", "files"])
def test_iceberg_takes_the_types_it_keeps_and_refuses_the_ones_it_would_change(path, trino_config, trino_server, query) -> None:
    config = with_path(trino_config, trino_server, path)
    write(config, [orders([1], ["a"])], column_types={"id": "bigint", "amount": "decimal(18,2)"})
    assert columns_of(query, config) == {"id": "bigint", "amount": "decimal(18,2)", "note": "varchar", "ts": "timestamp(6) with time zone"}
    assert rows_of(query, config)[0][:3] == [1, Decimal("13.50"), "a"]
    for asked, kept in [("varchar(20)", "varchar"), ("timestamp(3) with time zone", "timestamp(6) with time zone")]:
        column = "note" if asked.startswith("varchar") else "ts"
        with pytest.raises(ConfigError) as err:
            write(config, [orders([1], ["a"])], table="u", column_types={column: asked})
        message = str(err.value)
        assert f"catalog 'iceberg' (iceberg) stores type '{asked}' as '{kept}', so column '{column}' would not have the type" in message
        assert err.value.stream == "s" and f"write '{kept}' for '{column}'" in (err.value.fix or "")
    assert tables_of(query, config) == ["t"]  # no table u, no probe table left


@pytest.mark.parametrize("path", ["sql", "s3"])
def test_delta_lake_on_s3_keeps_a_millisecond_zoned_timestamp_and_refuses_varchar_n(path, trino_config, trino_server, query) -> None:
    config = with_path(trino_config | {"catalog": "delta_s3"}, trino_server, path)
    kept = {"id": "bigint", "amount": "decimal(18,2)", "ts": "timestamp(3) with time zone"}
    write(config, [orders([1], ["a"])], column_types=kept)
    assert columns_of(query, config) == kept | {"note": "varchar"}
    got = rows_of(query, config)[0]
    assert got[:3] == [1, Decimal("13.50"), "a"] and got[3] == dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    with pytest.raises(ConfigError, match="catalog 'delta_s3' \\(delta_lake\\) stores type 'varchar\\(20\\)' as 'varchar'"):
        write(config, [orders([1], ["a"])], table="u", column_types={"note": "varchar(20)"})
    assert tables_of(query, config) == ["t"]


@pytest.mark.parametrize("path", ["sql", "files"])
def test_a_value_longer_than_a_varchar_override_fails_instead_of_being_cut(path, trino_config, trino_server, query) -> None:
    config = with_path(trino_config | {"catalog": "memory"}, trino_server, path)
    with pytest.raises(SchemaMismatch) as err:
        write(config, [orders([1, 2], ["abc", "abcdef"])], column_types={"note": "varchar(3)"})
    assert "could not write into table memory." in str(err.value)
    # the publish failed: no table (memory's failed CREATE TABLE AS left an empty one: dropped), no staging table
    assert tables_of(query, config) == []


def test_a_timestamp_override_that_would_round_fails(trino_config, query) -> None:
    config = trino_config | {"catalog": "memory"}
    with pytest.raises(SchemaMismatch) as err:
        write(config, [orders([1], ["a"], micros=456)], column_types={"ts": "timestamp(3) with time zone"})
    assert "column 'ts' of table memory." in str(err.value) and "have more fractional seconds digits; writing them would round them" in str(
        err.value
    )
    assert tables_of(query, config) == []


@pytest.mark.parametrize("path", ["sql", "files"])
def test_decimal_text_that_a_decimal_override_would_round_fails_and_text_that_fits_loads(path, trino_config, trino_server, query) -> None:
    config = with_path(trino_config, trino_server, path)
    text = pa.record_batch({"id": pa.array([1, 2], pa.int32()), "amount": ["12.50", "-0.125"]})
    with pytest.raises(SchemaMismatch) as err:
        write(config, [text], column_types={"amount": "decimal(18,2)"})
    assert "column 'amount' of table iceberg." in str(err.value) and "1 value of the stream (string)" in str(err.value)
    assert tables_of(query, config) == []
    write(config, [text.slice(0, 1)], column_types={"amount": "decimal(18,2)"})
    assert rows_of(query, config) == [[1, Decimal("12.50")]] and columns_of(query, config)["amount"] == "decimal(18,2)"


def test_check_column_types_parses_with_trino_and_asks_the_catalog(trino_config, query) -> None:
    with TrinoDestination(trino_config) as dest:
        dest.check_column_types({"amount": "decimal(18,2)", "id": "int"}, stream="orders")  # the schema does not exist: parse only
        with pytest.raises(ConfigError, match=r"Trino cannot use type 'moneyz' for column 'amount': .*Unknown type: moneyz"):
            dest.check_column_types({"amount": "moneyz"}, stream="orders")
        with pytest.raises(ConfigError, match="DECIMAL precision must be in range"):
            dest.check_column_types({"amount": "decimal(50,2)"}, stream="orders")
        with pytest.raises(ConfigError, match="which is not a type name"):
            dest.check_column_types({"amount": "int); DROP TABLE x; --"}, stream="orders")
        query(f'CREATE SCHEMA iceberg."{trino_config["schema"]}"')
        with pytest.raises(ConfigError, match="stores type 'smallint' as 'integer'"):
            dest.check_column_types({"id": "smallint"}, stream="orders")
    assert tables_of(query, trino_config) == []


# -- in a notebook: refused before anything is written -----------------------------------------------


CSV = "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  format: csv\nstreams:\n  orders: {}\n"


def notebook(folder: Path, config: dict, types: str) -> Path:
    yaml = "".join(f"  {k}: {v}\n" for k, v in config.items())
    cell = f"%%di_destination wh --upstream src\ndestination: trino\nconfig:\n{yaml}streams:\n  orders:\n    column_types: {types}\n"
    return write_notebook(folder / "types.ipynb", [CSV, cell])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "orders.csv").write_text("id,amount,note\n1,12.5,a\n2,3.25,b\n")
    return tmp_path


def test_a_notebook_creates_the_overridden_types_in_trino(folder, capsys, trino_config, query) -> None:
    code, _, err = run_notebook(notebook(folder, trino_config, '{amount: "decimal(18,2)", id: "integer"}'), capsys=capsys)
    assert code == 0, err
    assert columns_of(query, trino_config, "orders") == {"id": "integer", "amount": "decimal(18,2)", "note": "varchar"}
    assert rows_of(query, trino_config, "orders") == [[1, Decimal("12.50"), "a"], [2, Decimal("3.25"), "b"]]


@pytest.mark.parametrize(
    ("types", "message"),
    [
        ('{amont: "decimal(18,2)"}', "column_types names column 'amont', which the stream does not write (it writes: id, amount, note)"),
        (
            '{amount: "int); DROP TABLE orders; --"}',
            "column_types: column 'amount' has 'int); DROP TABLE orders; --', which is not a type name",
        ),
        ('{amount: "moneyz"}', "Trino cannot use type 'moneyz' for column 'amount'"),
        ('{amount: "decimal(50,2)"}', "Trino cannot use type 'decimal(50,2)' for column 'amount'"),
        ('{note: "varchar(20)"}', "catalog 'iceberg' (iceberg) stores type 'varchar(20)' as 'varchar'"),
    ],
)
def test_a_bad_override_is_one_clear_error_and_nothing_is_written(types, message, folder, capsys, trino_config, query) -> None:
    code, _, err = run_notebook(notebook(folder, trino_config, types), capsys=capsys)
    assert code in (1, 2), err  # 2: refused as the cell is read, 1: when the block runs
    assert message in err and "block 'wh'" in err and "orders" in err and "Fix:" in err
    assert tables_of(query, trino_config) == []


# -- the destination panel's Schema conflicts tab ---------------------------------------------------


def test_the_panels_schema_conflicts_tab_describes_a_trino_table(tmp_path, monkeypatch, trino_config, query) -> None:
    """The panel's tab (the same check a notebook user opens) on a Trino table: not "unknown" any more."""
    from IPython.utils.capture import capture_output

    from tests.notebook.test_panels import SOURCE, conflicts_of, panel_of
    from tests.support.shell import fresh_shell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state" / "state.sqlite"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("id,name,updated_at\n1,a,2024-01-01\n")
    make_table(query, trino_config, "id bigint, name integer, legacy varchar")
    yaml = "".join(f"  {k}: {v}\n" for k, v in trino_config.items())
    shell = fresh_shell()
    try:
        shell.ok(SOURCE)
        with capture_output():  # the cell runs the load, which fails as the tab says it will
            error = shell.error(
                f"%%di_destination wh --upstream shop\ndestination: trino\nconfig:\n{yaml}streams:\n  orders:\n    replication_method: FULL_TABLE\n"
            )
        panel = panel_of(shell, "wh")
        found = conflicts_of(panel)
    finally:
        shell.ip.extension_manager.unload_extension("jupyter_di")
    assert found["name"][0] == "type changed" and found["name"][2] and "cast to integer on write" in found["name"][1]
    assert found["updated_at"][0] == "new column" and found["updated_at"][1].startswith("added as date on the next run")
    assert found["legacy"][:2] == ("not sent", "NULL in every row after the next run (FULL_TABLE replaces the table's rows)")
    assert "id" not in found  # bigint on both sides
    assert "Cannot cast 'a' to INT" in error and rows_of(query, trino_config, "orders") == []  # nothing written
    assert "3 conflicts in 1 stream, 1 that can fail the next run." in panel.conflicts.status.value
