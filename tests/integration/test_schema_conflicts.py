"""What the schema-conflict view says per destination (issue 21, item 5), against real tables: each
destination describes its own table (DuckDB, SQLite, PostgreSQL), others say they cannot."""

from __future__ import annotations

import sqlite3

import pyarrow as pa
import pytest

from jupyter_di.connectors import registry
from jupyter_di.connectors.base import StreamSettings
from jupyter_di.integration.schema_conflicts import NEW, OVERRIDE, TYPE, canonical_type, compare, fits

STREAM = pa.schema([("id", pa.int32()), ("amount", pa.float64()), ("note", pa.string()), ("added", pa.int64())])


def outcomes(connector: str, config: dict, settings: StreamSettings, dropped: list[str] | None = None):
    with registry.destination_class(connector)(config) as destination:
        found = compare(destination, connector, settings, STREAM, dropped or [])
    return found, {c.column: c for c in found.conflicts}


def test_duckdb_says_which_values_fit_and_what_a_new_or_missing_column_gets(tmp_path):
    import duckdb

    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE orders (id BIGINT, amount DECIMAL(10,2), note INTEGER, gone VARCHAR)")
    settings = StreamSettings("orders", unique_constraints=["id"], replication_method="INCREMENTAL")
    found, by = outcomes("duckdb", {"path": str(path)}, settings, dropped=["gone"])
    assert found.exists and set(by) == {"id", "amount", "note", "added", "gone"}
    assert not by["id"].fails  # INTEGER values into a BIGINT column all fit
    assert by["amount"].kind == TYPE and by["amount"].fails and "cast to DECIMAL(10,2) on write" in by["amount"].outcome
    assert by["note"].fails and by["note"].table_type == "INTEGER" and by["note"].stream_type == "VARCHAR"
    assert by["added"].kind == NEW and by["added"].outcome == "added as BIGINT on the next run (auto_add_new_fields)"
    assert by["gone"].outcome.startswith("set to NULL in the rows the next run upserts (the source dropped it)")
    # refused new columns show the writer's own error
    settings.auto_add_new_fields = False
    _, by = outcomes("duckdb", {"path": str(path)}, settings)
    assert by["added"].fails and "the stream has column(s) 'added' that table 'orders' does not have" in by["added"].outcome


def test_a_wider_table_type_fits_and_an_override_on_an_existing_column_is_reported(tmp_path):
    import duckdb

    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE orders (id BIGINT, amount DOUBLE, note VARCHAR, added BIGINT)")
    settings = StreamSettings("orders", column_types={"amount": "decimal(18,2)"})
    _, by = outcomes("duckdb", {"path": str(path)}, settings)
    assert by["id"].kind == TYPE and not by["id"].fails and by["id"].outcome == "cast to BIGINT on write: every INTEGER value fits"
    assert by["amount"].kind == OVERRIDE and "the table keeps DOUBLE" in by["amount"].outcome


def test_a_table_not_there_yet_and_a_destination_that_cannot_describe(tmp_path):
    found, _ = outcomes("duckdb", {"path": str(tmp_path / "new.duckdb")}, StreamSettings("orders"))
    assert found.exists is False and "does not exist yet" in found.note
    found, _ = outcomes("files", {"path": str(tmp_path / "out"), "format": "csv"}, StreamSettings("orders"))
    assert found.exists is None and found.note == "files cannot describe its tables: the conflicts are unknown."


def test_sqlite_keeps_the_declared_type_and_stores_values_as_they_come(tmp_path):
    path = tmp_path / "wh.sqlite"
    with sqlite3.connect(path) as con:
        con.execute('CREATE TABLE orders (id INTEGER, amount REAL, note INTEGER, added INTEGER, "legacy" TEXT)')
    _, by = outcomes("sqlite", {"path": str(path)}, StreamSettings("orders"))
    assert set(by) == {"note", "legacy"}
    assert not by["note"].fails and by["note"].outcome.startswith("stored as it comes")
    assert by["legacy"].outcome == "NULL in every row after the next run (FULL_TABLE replaces the table's rows)"


@pytest.mark.postgres
def test_postgresql_describes_its_table_and_casts(pg_config, pg_connect):
    pg_connect().execute("CREATE TABLE public.orders (id bigint, amount numeric(10,2), note integer)")
    settings = StreamSettings("orders")
    found, by = outcomes("postgresql", dict(pg_config), settings)
    assert found.exists and set(by) == {"id", "amount", "note", "added"}
    assert not by["id"].fails and "every integer value fits" in by["id"].outcome
    assert by["amount"].fails and by["amount"].table_type == "numeric(10,2)" and by["amount"].stream_type == "double precision"
    assert by["added"].kind == NEW and by["added"].outcome.startswith("added as bigint")
    with registry.destination_class("postgresql")(dict(pg_config)) as destination:
        assert [(c.name, c.type) for c in destination.describe_table("orders") or []] == [
            ("id", "bigint"),
            ("amount", "numeric(10,2)"),
            ("note", "integer"),
        ]
        assert destination.describe_table("nope") is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("decimal(18, 2)", "NUMERIC(18,2)", True),
        ("TIMESTAMPTZ", "timestamp with time zone", True),
        ("int8", "BIGINT", True),
        ("text", "VARCHAR", True),
    ],
)
def test_type_spellings_of_the_engines_compare_equal(a, b, same):
    assert (canonical_type(a) == canonical_type(b)) is same


def test_which_casts_keep_every_value():
    assert fits("INTEGER", "BIGINT") and not fits("BIGINT", "INTEGER")
    assert fits("DECIMAL(10,2)", "NUMERIC(18,4)") and not fits("NUMERIC(18,4)", "DECIMAL(10,2)")
    assert fits("DOUBLE", "VARCHAR") and not fits("VARCHAR", "INTEGER") and not fits("TIMESTAMP", "TIMESTAMPTZ")
