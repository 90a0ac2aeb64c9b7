"""Per-column type overrides at the destination (issue 21, item 5): ``column_types`` in a destination
stream's settings is the type the table's column is created with; a bad override is one clear error
before anything is written."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.notebooks import duckdb_query, pg_yaml, run_notebook, write_notebook

CSV = "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  format: csv\nstreams:\n  orders: {}\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "orders.csv").write_text("id,amount,note\n1,12.5,a\n2,3.25,b\n")
    return tmp_path


def destination(connector: str, config: str, types: str) -> str:
    return (
        f"%%di_destination wh --upstream src\ndestination: {connector}\nconfig:\n{config}streams:\n  orders:\n    column_types: {types}\n"
    )


def run(folder: Path, capsys, *cells: str):
    return run_notebook(write_notebook(folder / "types.ipynb", cells), capsys=capsys)


OVERRIDE = '{amount: "decimal(18,2)", id: "integer"}'


def test_duckdb_creates_the_overridden_types(folder, capsys):
    code, _, err = run(folder, capsys, CSV, destination("duckdb", "  path: out.duckdb\n", OVERRIDE))
    assert code == 0, err
    types = duckdb_query(folder / "out.duckdb", "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'orders'")
    assert dict(types) == {"id": "INTEGER", "amount": "DECIMAL(18,2)", "note": "VARCHAR"}
    assert duckdb_query(folder / "out.duckdb", "SELECT id, amount FROM orders ORDER BY id") == [(1, Decimal("12.50")), (2, Decimal("3.25"))]


def test_sqlite_creates_the_overridden_types(folder, capsys):
    code, _, err = run(folder, capsys, CSV, destination("sqlite", "  path: out.sqlite\n", OVERRIDE))
    assert code == 0, err
    with sqlite3.connect(folder / "out.sqlite") as con:
        (created,) = con.execute("SELECT sql FROM sqlite_master WHERE name = 'orders'").fetchone()
        rows = con.execute("SELECT id, amount FROM orders ORDER BY id").fetchall()
    assert '"id" integer, "amount" decimal(18,2), "note" TEXT' in created  # SQLite keeps the declared text
    assert rows == [(1, 12.5), (2, 3.25)]


def test_a_column_added_later_takes_its_override(folder, capsys):
    (folder / "csvs" / "orders.csv").write_text("id,note\n1,a\n")
    code, _, err = run(folder, capsys, CSV, destination("duckdb", "  path: out.duckdb\n", '{note: "varchar(20)"}'))
    assert code == 0, err
    (folder / "csvs" / "orders.csv").write_text("id,note,amount\n1,a,12.5\n")
    code, _, err = run(folder, capsys, CSV, destination("duckdb", "  path: out.duckdb\n", OVERRIDE + "\n    auto_add_new_fields: true"))
    assert code == 0, err
    types = dict(duckdb_query(folder / "out.duckdb", "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'orders'"))
    assert types["amount"] == "DECIMAL(18,2)"  # added by ALTER TABLE with the override
    assert types["id"] == "BIGINT"  # created before the override: an existing column keeps its type


@pytest.mark.postgres
def test_postgresql_creates_the_overridden_types(folder, capsys, pg_config, pg_connect):
    table = "types_override_orders"
    cell = destination("postgresql", pg_yaml(pg_config), OVERRIDE).replace(
        "    column_types", f"    destination_table: {table}\n    column_types"
    )
    code, _, err = run(folder, capsys, CSV, cell)
    assert code == 0, err
    conn = pg_connect()
    types = dict(
        conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
            (f'public."{table}"',),
        ).fetchall()
    )
    rows = conn.execute(f'SELECT id, amount FROM public."{table}" ORDER BY id').fetchall()
    assert types == {"id": "integer", "amount": "numeric(18,2)", "note": "text"}
    assert rows == [(1, Decimal("12.50")), (2, Decimal("3.25"))]


@pytest.mark.postgres
def test_postgresql_refuses_a_type_it_does_not_know_before_writing(folder, capsys, pg_config, pg_connect):
    table = "types_bad_orders"
    cell = destination("postgresql", pg_yaml(pg_config), '{amount: "moneyz"}').replace(
        "    column_types", f"    destination_table: {table}\n    column_types"
    )
    code, _, err = run(folder, capsys, CSV, cell)
    assert code in (1, 2), err  # 2: refused as the cell is read, 1: when the block runs
    assert "block 'wh'" in err and "orders" in err and "PostgreSQL cannot use type 'moneyz' for column 'amount'" in err
    assert pg_connect().execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone() == (None,)
    assert pg_connect().execute("SELECT to_regclass('public._jupyter_di_state')").fetchone() == (None,)  # nothing written


def nothing_written(folder: Path) -> bool:
    path = folder / "out.duckdb"
    return not path.exists() or duckdb_query(path, "SELECT count(*) FROM information_schema.tables") == [(0,)]


@pytest.mark.parametrize(
    ("types", "message"),
    [
        ('{amont: "decimal(18,2)"}', "column_types names column 'amont', which the stream does not write (it writes: id, amount, note)"),
        ('{amount: "decimal(99,2)"}', "duckdb cannot use type 'decimal(99,2)' for column 'amount'"),
        ('{amount: "moneyz"}', "duckdb cannot use type 'moneyz' for column 'amount'"),
        (
            '{amount: "int); DROP TABLE orders; --"}',
            "column_types: column 'amount' has 'int); DROP TABLE orders; --', which is not a type name",
        ),
        ("{amount: 12}", "column_types: column 'amount' has '12', which is not a type name"),
        ("[amount]", "column_types must map column names to destination types"),
    ],
)
def test_a_bad_override_is_one_clear_error_and_nothing_is_written(folder, capsys, types, message):
    code, _, err = run(folder, capsys, CSV, destination("duckdb", "  path: out.duckdb\n", types))
    assert code in (1, 2), err  # 2: refused as the cell is read, 1: when the block runs
    assert message in err and "block 'wh'" in err and "orders" in err and "Fix:" in err
    assert nothing_written(folder)


def test_a_destination_without_overrides_refuses_them(folder, capsys):
    code, _, err = run(folder, capsys, CSV, destination("files", "  path: out\n  format: csv\n", OVERRIDE))
    assert code in (1, 2), err  # 2: refused as the cell is read, 1: when the block runs
    assert "destination 'files' does not take column_types" in err and "block 'wh'" in err
    assert not (folder / "out").exists() or not any((folder / "out").iterdir())


def test_column_types_at_a_source_is_refused(folder, capsys):
    code, _, err = run(folder, capsys, CSV.replace("orders: {}", 'orders: {column_types: {amount: "decimal(18,2)"}}'))
    assert code in (1, 2), err  # 2: refused as the cell is read, 1: when the block runs
    assert "column_types is a destination setting" in err and "block 'src'" in err
