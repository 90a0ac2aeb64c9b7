"""The headless CLI: quickstart end to end, incremental rerun, exit codes, graph, state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.notebooks import cli_process as cli
from tests.support.notebooks import duckdb_query, rows_read, write_notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def quickstart(tmp_path) -> Path:
    shutil.copytree(
        ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".jupyter_di", "*.duckdb*", ".ipynb_checkpoints")
    )
    return tmp_path / "notebooks" / "quickstart.ipynb"


def warehouse(notebook: Path, sql: str) -> list[tuple]:
    return duckdb_query(notebook.parent / "warehouse.duckdb", sql)


def warehouse_rows(notebook: Path, table: str) -> int:
    return warehouse(notebook, f'SELECT count(*) FROM "{table}"')[0][0]


def test_quickstart_runs_headless_then_incrementally(quickstart):
    first = cli("run", str(quickstart))
    assert first.returncode == 0, first.stderr
    assert "warehouse  destination  orders           1,000  orders" in first.stdout
    assert warehouse_rows(quickstart, "orders") == 1000
    assert warehouse_rows(quickstart, "customers") == 50
    enriched = warehouse_rows(quickstart, "enriched_orders")
    assert 700 < enriched < 1000  # pending orders are filtered out

    state = json.loads(cli("state", "show", str(quickstart)).stdout)
    assert state == {"bookmarks": {"shop.orders": {"updated_at": "2024-03-26T16:40:00+00:00"}}}

    # a changed order and a new one: only they (plus the row at the bookmark) are read again
    orders = quickstart.parent / "data" / "orders.csv"
    lines = orders.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0].replace(",paid,", ",refunded,") + ",2024-04-01T00:00:00+00:00"
    lines.append("1001,3,paid,10.00,2024-04-02T00:00:00+00:00")
    orders.write_text("\n".join(lines) + "\n")
    second = cli("run", "-q", str(quickstart))
    assert second.returncode == 0, second.stderr
    assert "shop       source       orders           3     read" in second.stdout
    assert warehouse_rows(quickstart, "orders") == 1001  # upserted on id: no duplicates
    assert warehouse(quickstart, 'SELECT status FROM "orders" WHERE id = 5') == [("refunded",)]
    state = json.loads(cli("state", "show", str(quickstart)).stdout)
    assert state["bookmarks"]["shop.orders"] == {"updated_at": "2024-04-02T00:00:00+00:00"}


def test_one_run_bookmark_override_does_not_pin_state(quickstart):
    assert cli("run", "-q", str(quickstart)).returncode == 0
    run = cli("run", "-q", str(quickstart), "--bookmark", "shop.orders.updated_at=2024-03-26T00:00:00+00:00")
    assert run.returncode == 0, run.stderr
    assert rows_read(run.stdout, "shop", "orders") > 1
    state = json.loads(cli("state", "show", str(quickstart)).stdout)
    assert state["bookmarks"]["shop.orders"] == {"updated_at": "2024-03-26T16:40:00+00:00"}


def test_state_set_and_reset(quickstart):
    assert cli("run", "-q", str(quickstart)).returncode == 0
    assert cli("state", "set", str(quickstart), "shop", "orders", "--value", "updated_at=2024-03-26T16:00:00+00:00").returncode == 0
    run = cli("run", "-q", str(quickstart))
    assert "shop       source       orders           2     read" in run.stdout
    reset = cli("state", "reset", str(quickstart), "shop")
    assert "reset 1 stream state(s)" in reset.stdout
    run = cli("run", "-q", str(quickstart))
    assert "orders           1,000  read" in run.stdout


def test_dry_run_and_graph(quickstart):
    dry = cli("run", "--dry-run", str(quickstart))
    assert dry.returncode == 0
    assert dry.stdout.splitlines()[1:] == [
        "  shop (source)",
        "  enriched_orders (python) <- shop",
        "  warehouse (destination) <- shop, enriched_orders",
    ]
    assert not (quickstart.parent / "warehouse.duckdb").exists()
    graph = cli("graph", str(quickstart), "--format", "mermaid")
    assert "shop --> enriched_orders" in graph.stdout and "enriched_orders --> warehouse" in graph.stdout


def test_failing_block_exits_1_with_short_error_and_skips_downstream(tmp_path):
    nb = write_notebook(
        tmp_path / "fail.ipynb",
        [
            "%%di_block a\n@data_loader\ndef f(**kw):\n    raise ValueError('the API is down')\n",
            "%%di_block b --upstream a\n@transformer\ndef g(x, **kw):\n    return x\n",
            "%%di_block c\n@data_loader\ndef h(**kw):\n    return 1\n",
        ],
    )
    run = cli("run", str(nb))
    assert run.returncode == 1
    assert "block 'a': f() raised ValueError: the API is down" in run.stderr
    assert "'b' (upstream 'a' failed)" in run.stderr
    assert "Traceback" not in run.stderr
    statuses = {line.split()[0]: line.split()[1] for line in run.stdout.splitlines()[2:5]}
    assert statuses == {"a": "failed", "b": "skipped", "c": "done"}


def test_bad_notebooks_exit_2_with_one_line(tmp_path):
    missing = cli("run", str(tmp_path / "nope.ipynb"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    cyc = write_notebook(
        tmp_path / "cyc.ipynb",
        [
            "%%di_block a --upstream b\n@custom\ndef f(x, **kw):\n    return 1\n",
            "%%di_block b --upstream a\n@custom\ndef f(x, **kw):\n    return 1\n",
        ],
    )
    run = cli("run", str(cyc))
    assert run.returncode == 2 and "cycle" in run.stderr and "Traceback" not in run.stderr
    dup = write_notebook(
        tmp_path / "dup.ipynb",
        ["%%di_block a\n@custom\ndef f(**kw):\n    return 1\n", "%%di_block a\n@custom\ndef f(**kw):\n    return 1\n"],
    )
    run = cli("run", str(dup))
    assert run.returncode == 2 and "already used by another cell" in run.stderr
    flags = write_notebook(tmp_path / "flags.ipynb", ["%%di_block a --frobnicate\n@custom\ndef f(**kw):\n    return 1\n"])
    run = cli("run", str(flags))
    assert run.returncode == 2 and "unrecognized arguments: --frobnicate" in run.stderr


def test_params_and_plain_cells_run_in_place(tmp_path):
    nb = write_notebook(
        tmp_path / "params.ipynb",
        [
            "%load_ext jupyter_di\nGREETING = 'hello'",
            "%%di_block greet\n@custom\ndef f(**kw):\n    return f\"{GREETING} {kw['who']}\"\n",
            "print('RESULT', 'ran after greet')",
        ],
    )
    run = cli("run", "-q", str(nb), "-p", "who=world")
    assert run.returncode == 0, run.stderr
    assert "RESULT ran after greet" in run.stdout
    assert "greet  done" in run.stdout


def test_a_failed_block_error_is_printed_once(tmp_path):
    """Issue 13, item 5: the error was in the progress line, the summary table and the final paragraph."""
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "t.csv").write_text("id\n1\n")
    path = write_notebook(
        tmp_path / "fails.ipynb",
        [
            "%%di_source src\nsource: files\nconfig:\n  path: csvs\n  format: csv\n",
            "%%di_destination out --upstream src\ndestination: files\nconfig:\n  path: lake\n  format: xml\n",
        ],
    )
    result = cli("run", str(path))
    assert result.returncode == 1
    both = result.stdout + result.stderr
    assert both.count("xml") == 1, both  # the error names the bad format once, in the closing paragraph
    assert "block 'out'" in result.stderr and "see the error below" in result.stdout


def test_progress_bars_on_a_terminal_and_lines_in_logs():
    """`jupyter-di run` shows a live bar per stream on a terminal (tqdm) and plain lines in CI logs."""
    import io

    from jupyter_di.cli import TerminalProgress
    from jupyter_di.pipeline.run_record import DONE, RUNNING, BlockRun

    terminal = io.StringIO()
    progress = TerminalProgress(terminal, bars=True)
    run = BlockRun("src")
    run.start()
    progress.block_changed(run)
    for rows in (1000, 250_000, 1_000_000):
        progress.stream_progress("src", "orders", "read", rows, 1.0)
    assert progress._bars[("src", "orders", "read")].n == 1_000_000  # tqdm redraws at most 10 times a second
    run.finish(DONE)
    progress.block_changed(run)
    shown = terminal.getvalue()
    assert "src.orders read" in shown and " rows" in shown and "✔ src done" in shown
    assert not progress._bars  # closed when the block ended

    log = io.StringIO()
    quiet_lines = TerminalProgress(log, bars=False)
    quiet_lines.stream_progress("src", "orders", "read", 1_000_000, 2.0)
    assert log.getvalue() == "    src.orders read: 1,000,000 rows (500,000 rows/s)\n"
    assert RUNNING == "running" and f"{DONE}" == "done"  # statuses are an enum that reads as text
