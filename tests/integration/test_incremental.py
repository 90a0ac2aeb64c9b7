"""Incremental sync semantics with a real PostgreSQL source (issue 4)."""

from __future__ import annotations

import pytest

from jupyter_di.state import api
from tests.support.notebooks import INCREMENTAL_ORDERS, duckdb_query, pg_source, rows_read, write_notebook
from tests.support.notebooks import run_notebook as run
from tests.support.orders import create_orders

pytestmark = pytest.mark.postgres


def source_cell(pg: dict, extra: str = "", name: str = "src") -> str:
    return pg_source(pg, INCREMENTAL_ORDERS + extra, name)


@pytest.fixture
def orders(pg_connect):
    return create_orders(pg_connect(), 100, step="1 hour", note=None)


def notebook(tmp_path, cells: list[str]):
    return write_notebook(tmp_path / "inc.ipynb", cells)


def duck_rows(tmp_path, sql: str):
    return duckdb_query(tmp_path / "out.duckdb", sql)


DUCK = "%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n"


def test_ties_at_the_bookmark_zero_row_runs_and_overrides(tmp_path, orders, pg_config, capsys):
    path = notebook(tmp_path, [source_cell(pg_config), DUCK])
    assert run(path, capsys=capsys)[0] == 0
    assert api.get_bookmark(path, "src", "orders") == {"updated_at": "2024-01-05T04:00:00+00:00"}

    # a row changed with a cursor EQUAL to the saved bookmark is still synced (inclusive bookmark + upsert)
    orders.execute("UPDATE orders SET note = 'tie' WHERE id = 100")
    code, out, _ = run(path, capsys=capsys)
    assert code == 0 and rows_read(out) == 1
    assert duck_rows(tmp_path, 'SELECT note FROM "orders" WHERE id = 100') == [("tie",)]
    assert duck_rows(tmp_path, 'SELECT count(*), count(DISTINCT id) FROM "orders"') == [(100, 100)]

    # nothing new: the run reads only the boundary row and keeps its bookmark
    orders.execute("DELETE FROM orders WHERE id = 100")
    code, out, _ = run(path, capsys=capsys)
    assert code == 0 and rows_read(out) == 0
    assert api.get_bookmark(path, "src", "orders") == {"updated_at": "2024-01-05T04:00:00+00:00"}

    # a one-run override re-reads from an earlier point and leaves the saved bookmark as it was
    code, out, _ = run(path, "--bookmark", "src.orders.updated_at=2024-01-05T00:00:00+00:00", capsys=capsys)
    assert code == 0 and rows_read(out) == 4
    assert api.get_bookmark(path, "src", "orders") == {"updated_at": "2024-01-05T04:00:00+00:00"}

    # a pinned value (CLI `state set` / panel / Python API) is used once, then syncs move on
    api.set_bookmark(path, "src", "orders", updated_at="2024-01-04T23:00:00+00:00")
    code, out, _ = run(path, capsys=capsys)
    assert code == 0 and rows_read(out) == 5
    assert api.reset(path, "src") == 1
    code, out, _ = run(path, capsys=capsys)
    assert rows_read(out) == 99
    assert duck_rows(tmp_path, 'SELECT count(*), count(DISTINCT id) FROM "orders"') == [(100, 100)]  # id 100 stays: deletes are not synced


def test_clear_errors_for_bad_bookmarks_and_keys(tmp_path, orders, pg_config, capsys):
    path = notebook(tmp_path, [source_cell(pg_config), DUCK])
    code, _, err = run(path, "--bookmark", "src.orders.updated_at=yesterday-ish", capsys=capsys)
    assert code == 1
    assert "block 'src', stream 'orders': bookmark value 'yesterday-ish' for column 'updated_at' has the wrong type (date-time)" in err
    code, _, err = run(path, "--bookmark", "src.orders", capsys=capsys)
    assert code == 2 and "is not BLOCK.STREAM.COLUMN=VALUE" in err

    bad_column = notebook(tmp_path, [source_cell(pg_config).replace("[updated_at]", "[changed_at]"), DUCK])
    code, _, err = run(bad_column, capsys=capsys)
    assert code == 1 and "bookmark column 'changed_at' not found" in err and "'wh' (upstream 'src' failed)" in err
    bad_key = notebook(tmp_path, [source_cell(pg_config).replace("key_properties: [id]", "key_properties: [order_id]"), DUCK])
    code, _, err = run(bad_key, capsys=capsys)
    assert code == 1 and "key column 'order_id' not found" in err
    no_bookmark = notebook(tmp_path, [source_cell(pg_config).replace("    bookmark_properties: [updated_at]\n", ""), DUCK])
    code, _, err = run(no_bookmark, capsys=capsys)
    assert code == 1 and "block 'src', stream 'orders': an INCREMENTAL stream needs bookmark_properties" in err


def test_a_failed_destination_keeps_its_rows_coming(tmp_path, orders, pg_config, capsys):
    """Two destinations; one fails: the stream's bookmark must not skip past its rows."""
    lake = "%%di_destination lake --upstream src\ndestination: files\nconfig:\n  path: lake\n  format: jsonl\n"
    path = notebook(tmp_path, [source_cell(pg_config), DUCK, lake.replace("jsonl", "xml")])
    code, _, err = run(path, capsys=capsys)
    assert code == 1 and "block 'lake'" in err
    assert api.get_bookmark(path, "src", "orders") is None  # lake has committed nothing yet
    path = notebook(tmp_path, [source_cell(pg_config), DUCK, lake])
    orders.execute("INSERT INTO orders VALUES (101, '2024-02-01', 'late')")
    code, out, _ = run(path, capsys=capsys)
    assert code == 0 and rows_read(out) == 101
    lines = (tmp_path / "lake" / "orders.jsonl").read_text().splitlines()
    assert len(lines) == 101


def test_schema_changes_between_runs(tmp_path, orders, pg_config, capsys):
    path = notebook(tmp_path, [source_cell(pg_config), DUCK])
    assert run(path, capsys=capsys)[0] == 0
    orders.execute("ALTER TABLE orders ADD COLUMN channel text")
    orders.execute("UPDATE orders SET channel = 'web', updated_at = '2024-03-01' WHERE id = 7")
    assert run(path, capsys=capsys)[0] == 0
    assert duck_rows(tmp_path, 'SELECT channel FROM "orders" WHERE id IN (6, 7) ORDER BY id') == [(None,), ("web",)]
    orders.execute("ALTER TABLE orders DROP COLUMN note")
    orders.execute("UPDATE orders SET updated_at = '2024-03-02' WHERE id = 8")
    assert run(path, capsys=capsys)[0] == 0
    assert duck_rows(tmp_path, 'SELECT note FROM "orders" WHERE id = 8') == [(None,)]  # dropped at the source -> NULL

    strict = notebook(tmp_path, [source_cell(pg_config, "    auto_add_new_fields: false\n"), DUCK])
    orders.execute("ALTER TABLE orders ADD COLUMN region text")
    orders.execute("UPDATE orders SET updated_at = '2024-03-03' WHERE id = 9")
    code, _, err = run(strict, capsys=capsys)
    assert code == 1 and "region" in err and "block 'wh', stream 'orders'" in err


def test_source_read_only_by_python_blocks_advances_when_the_run_succeeds(tmp_path, orders, pg_config, capsys):
    ok_block = "%%di_block count_them --upstream src\n@transformer\ndef f(src, **kw):\n    print('ROWS', len(src['rows']))\n    return len(src['rows'])\n"
    path = notebook(tmp_path, [source_cell(pg_config), ok_block])
    assert run(path, capsys=capsys)[0] == 0
    assert api.get_bookmark(path, "src", "orders") == {"updated_at": "2024-01-05T04:00:00+00:00"}
    failing = ok_block.replace("return len(src['rows'])", "raise RuntimeError('downstream broke')")
    path = notebook(
        tmp_path,
        [
            source_cell(pg_config, name="src2"),
            failing.replace("--upstream src", "--upstream src2").replace("(src,", "(src2,").replace("src['rows']", "src2['rows']"),
        ],
    )
    code, _, err = run(path, capsys=capsys)
    assert code == 1 and "downstream broke" in err
    assert api.get_bookmark(path, "src2", "orders") is None
