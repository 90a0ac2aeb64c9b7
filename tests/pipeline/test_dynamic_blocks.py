"""Dynamic blocks (``--dynamic``), their children and ``--reduce-output``, through ``jupyter-di run``.

Each tenant is a SQLite file; a Python block lists them (the dynamic block), a source syncs each
one as a child ``sync:ITEM`` with its own bookmarks, and a reducer or a destination gathers them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import pytest

from jupyter_di.pipeline.dynamic import escape_item_id, items_of
from jupyter_di.pipeline.magic_line import parse_cell
from jupyter_di.pipeline.pipeline import Pipeline
from tests.support.notebooks import cli_main, run_notebook, write_notebook


def tenant_db(folder: Path, name: str, rows: int, start: int = 1) -> Path:
    path = folder / f"{name}.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total REAL, updated_at INTEGER)")
        db.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(i, i * 1.5, i) for i in range(start, start + rows)])
    return path


def tenants_cell(names: list[str]) -> str:
    return (
        "%%di_block tenants --dynamic\n"
        "@data_loader\n"
        "def tenants(*args, **kwargs):\n"
        f"    names = {names!r}\n"
        "    return [[{'name': n, 'path': n + '.sqlite'} for n in names], [{'block_uuid': n} for n in names]]\n"
    )


SYNC = (
    "%%di_source sync --upstream tenants\n"
    "source: sqlite\n"
    "config:\n"
    "  path: \"{{ block_output('tenants', 'path') }}\"\n"
    "streams:\n"
    "  orders:\n"
    "    replication_method: INCREMENTAL\n"
    "    bookmark_properties: [updated_at]\n"
    "    key_properties: [id]\n"
)

WAREHOUSE = (
    "%%di_destination warehouse --upstream sync --reduce-output\ndestination: duckdb\nchild_column: tenant\nconfig:\n  path: out.duckdb\n"
)


def notebook(folder: Path, tenants: list[str], *cells: str) -> Path:
    return write_notebook(folder / "nb.ipynb", [tenants_cell(tenants), SYNC, *cells])


def table(folder: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(folder / "out.duckdb"), read_only=True) as db:
        return db.execute(sql).fetchall()


def read_rows(out: str) -> dict[str, int]:
    """Rows each source child read, from the summary table."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].startswith("sync:") and parts[1] == "source":
            rows[parts[0]] = int(parts[3].replace(",", ""))
    return rows


def test_each_child_keeps_its_own_bookmarks_across_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, rows in (("acme", 10), ("beta", 20), ("core", 30)):
        tenant_db(tmp_path, name, rows)
    path = notebook(tmp_path, ["acme", "beta", "core"], WAREHOUSE)
    code, out, err = run_notebook(path, capsys=capsys)
    assert code == 0, err
    assert read_rows(out) == {"sync:acme": 10, "sync:beta": 20, "sync:core": 30}
    assert table(tmp_path, "SELECT tenant, count(*) FROM orders GROUP BY 1 ORDER BY 1") == [
        ("sync:acme", 10),
        ("sync:beta", 20),
        ("sync:core", 30),
    ]
    # per-child state, listed per child
    code, out, _ = cli_main(capsys, "state", "show", str(path))
    bookmarks = json.loads(out)["bookmarks"]
    assert bookmarks == {
        "sync:acme.orders": {"updated_at": 10},
        "sync:beta.orders": {"updated_at": 20},
        "sync:core.orders": {"updated_at": 30},
    }

    # a new tenant syncs fully, the others from their bookmarks; a removed tenant is not run
    tenant_db(tmp_path, "beta", 5, start=21)
    tenant_db(tmp_path, "dune", 7)
    path = notebook(tmp_path, ["beta", "core", "dune"], WAREHOUSE)
    code, out, err = run_notebook(path, capsys=capsys)
    assert code == 0, err
    assert read_rows(out) == {"sync:beta": 6, "sync:core": 1, "sync:dune": 7}  # the tie row at each bookmark, then the new ones
    assert table(tmp_path, "SELECT tenant, count(*) FROM orders GROUP BY 1 ORDER BY 1") == [
        ("sync:acme", 10),
        ("sync:beta", 25),
        ("sync:core", 30),
        ("sync:dune", 7),
    ]
    bookmarks = json.loads(cli_main(capsys, "state", "show", str(path), "sync").out)["bookmarks"]
    assert bookmarks["sync:beta.orders"] == {"updated_at": 25} and bookmarks["sync:dune.orders"] == {"updated_at": 7}
    assert bookmarks["sync:acme.orders"] == {"updated_at": 10}  # kept, not run

    # --blocks accepts a child: only that tenant runs
    tenant_db(tmp_path, "core", 2, start=31)
    code, out, err = run_notebook(path, "--blocks", "sync:core", capsys=capsys)
    assert code == 0, err
    assert read_rows(out) == {"sync:core": 3}


def test_a_failing_child_skips_only_its_own_downstream(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tenant_db(tmp_path, "good", 3)
    (tmp_path / "bad.sqlite").write_text("not a database")
    load = (  # a child of each `sync` child: the tenant's item is an input only
        "%%di_destination load --upstream sync tenants\n"
        "destination: duckdb\n"
        "config:\n"
        "  path: \"{{ block_output('tenants', 'name') }}.duckdb\"\n"
        "upstream:\n"
        "  tenants: {only_as_input: true}\n"
    )
    path = notebook(tmp_path, ["good", "bad"], load)
    code, out, err = run_notebook(path, capsys=capsys)
    assert code == 1
    assert "block 'sync:bad'" in err
    lines: dict[str, str] = {}
    for line in out.splitlines():  # the first table: block, status
        if line.split() and line.split()[0].startswith(("sync", "load")):
            lines.setdefault(line.split()[0], line.split()[1])
    assert lines["sync:good"] == "done" and lines["load:good"] == "done"
    assert lines["sync:bad"] == "failed" and lines["load:bad"] == "skipped"
    with duckdb.connect(str(tmp_path / "good.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (3,)
    # the good child committed its bookmark with its rows; the failed one has none
    bookmarks = json.loads(cli_main(capsys, "state", "show", str(path)).out)["bookmarks"]
    assert bookmarks == {"sync:good.orders": {"updated_at": 3}}


PY_ONLY = [
    "%%di_block items --dynamic\n@data_loader\ndef f(*args, **kwargs):\n    return list(range(kwargs.get('n', 3)))\n",
    "%%di_block square --upstream items\n@transformer\ndef g(item, *args, **kwargs):\n    if item == kwargs.get('fail'):\n        raise ValueError('no')\n    return item * item\n",
    "%%di_block plus --upstream square\n@transformer\ndef h(x, *args, **kwargs):\n    return x + 1\n",
    "%%di_block total --upstream plus --reduce-output\n@transformer\ndef t(values, *args, **kwargs):\n    return list(values)\n",
]


def python_pipeline(tmp_path: Path) -> Pipeline:
    pipeline = Pipeline("p", state_path=tmp_path / "state.sqlite")
    for cell in PY_ONLY:
        pipeline.graph.add(parse_cell(cell))
    return pipeline


@pytest.mark.parametrize("count", [0, 1, 50])
def test_fan_out_of_0_1_and_50_items_reduces_in_item_order(tmp_path: Path, count: int) -> None:
    pipeline = python_pipeline(tmp_path)
    try:
        report = pipeline.run(pipeline.plan(list(pipeline.graph.blocks), {"n": count}, only_stale_ancestors=False), params={"n": count})
        assert report.ok, report.failure_message()
        assert pipeline.outputs["total"] == [i * i + 1 for i in range(count)]
        children = [n for n in report.runs if n.startswith("square:")]
        assert children == [f"square:{i}" for i in range(count)]
        names = list(report.runs)  # the report groups children under their block
        if count:
            assert names.index("square") + 1 == names.index("square:0")
            assert names.index("plus") > names.index(f"square:{count - 1}")
        assert report.runs["square"].summary["children"] == count
    finally:
        pipeline.close()


def test_a_failed_child_skips_its_children_and_the_reducer(tmp_path: Path) -> None:
    pipeline = python_pipeline(tmp_path)
    try:
        params = {"n": 4, "fail": 2}
        report = pipeline.run(pipeline.plan(list(pipeline.graph.blocks), params, only_stale_ancestors=False), params=params)
        status = {n: str(r.status) for n, r in report.runs.items()}
        assert status["square:2"] == "failed" and status["plus:2"] == "skipped"
        assert all(status[f"plus:{i}"] == "done" for i in (0, 1, 3))
        assert status["total"] == "skipped"  # never a list with an item missing
        assert "1 of 4 children failed" in report.runs["square"].error
    finally:
        pipeline.close()


def test_odd_block_uuids_are_escaped_never_paths_or_sql(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    odd = ["../../etc/passwd", "x'; DROP TABLE orders; --", 'a"b', "ten ant", "é/..", "", "a" * 300]
    ids = [escape_item_id(o) for o in odd]
    assert len(set(ids)) == len(ids)
    for item_id in ids:
        assert all(ch.isascii() and (ch.isalnum() or ch in "_-%~") for ch in item_id), item_id
        assert len(item_id) <= 100
    with pytest.raises(Exception, match="both name their child"):
        items_of("b", [[1, 2], [{"block_uuid": "a"}, {"block_uuid": "a"}]])
    # through a whole run: the odd names reach state keys, scratch folders and the destination's column
    tenant_db(tmp_path, "t", 2)
    cell = (
        "%%di_block tenants --dynamic\n@data_loader\ndef tenants(*args, **kwargs):\n"
        f"    odd = {odd[:3]!r}\n"
        "    return [[{'path': 't.sqlite'} for _ in odd], [{'block_uuid': o} for o in odd]]\n"
    )
    path = write_notebook(tmp_path / "nb.ipynb", [cell, SYNC, WAREHOUSE])
    code, _, err = run_notebook(path, capsys=capsys)
    assert code == 0, err
    got = table(tmp_path, "SELECT tenant, count(*) FROM orders GROUP BY 1 ORDER BY 1")
    assert got == sorted((f"sync:{i}", 2) for i in ids[:3])
    assert table(tmp_path, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'") == [(1,)]
    assert not (tmp_path.parent / "etc").exists()


def test_in_the_kernel_children_show_under_their_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.utils.capture import capture_output

    from tests.support.shell import fresh_shell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state.sqlite"))
    shell = fresh_shell()
    try:
        for cell in PY_ONLY:
            shell.ok(cell)
        assert shell.session.pipeline.outputs["total"] == [1, 2, 5]
        with capture_output() as out:
            shell.ok("%di_run -p n=2")
        table = out.outputs[-1].data["text/html"]
        assert table.index("<code>square</code>") < table.index("<code>square:0</code>") < table.index("<code>plus</code>")
        assert shell.session.pipeline.outputs["total"] == [1, 2]
        with capture_output() as out:
            shell.ok("%di_graph --format text")
        graph = out.stdout
        assert 'subgraph square__children["square: 2 children"]' in graph  # square:2 of the first run is gone
        assert "items<br/><small>python · dynamic</small>" in graph and "total<br/><small>python · reduce</small>" in graph
    finally:
        shell.ip.extension_manager.unload_extension("jupyter_di")


def test_a_dynamic_source_fans_out_per_row_and_a_child_takes_a_one_run_bookmark(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, rows in (("acme", 4), ("beta", 6)):
        tenant_db(tmp_path, name, rows)
    with sqlite3.connect(tmp_path / "tenants.sqlite") as db:
        db.execute("CREATE TABLE tenants (name TEXT, path TEXT)")
        db.executemany("INSERT INTO tenants VALUES (?, ?)", [("acme", "acme.sqlite"), ("beta", "beta.sqlite")])
    listing = "%%di_source tenants --dynamic\nsource: sqlite\nconfig:\n  path: tenants.sqlite\nstreams:\n  tenants: {}\n"
    path = write_notebook(tmp_path / "nb.ipynb", [listing, SYNC, WAREHOUSE])
    code, out, err = run_notebook(path, capsys=capsys)
    assert code == 0, err
    assert read_rows(out) == {"sync:0": 4, "sync:1": 6}  # one child per row of the listed stream
    code, out, err = run_notebook(path, "--bookmark", "sync:1.orders.updated_at=5", capsys=capsys)
    assert code == 0, err
    assert read_rows(out) == {"sync:0": 1, "sync:1": 2}  # the override applies to that child only
    code, _, err = run_notebook(path, "--bookmark", "sync:9.orders.updated_at=5", capsys=capsys)
    assert code == 1 and "--bookmark names 'sync:9', but 'tenants' has no item '9' in this run" in err, err
    code, _, err = run_notebook(path, "--bookmark", "warehouse:0.orders.updated_at=5", capsys=capsys)
    assert code == 2 and "bookmarks belong to source blocks" in err, err
