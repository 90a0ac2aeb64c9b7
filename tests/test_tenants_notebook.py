"""notebooks/tenants.ipynb: a dynamic source syncs each tenant, headless and in a kernel."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.support.notebooks import run_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def copy(tmp_path: Path) -> Path:
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks", ignore=shutil.ignore_patterns(".jupyter_di", "tenants", "*.duckdb"))
    return tmp_path / "notebooks" / "tenants.ipynb"


def tables(folder: Path) -> tuple[list[tuple], list[tuple]]:
    with duckdb.connect(str(folder / "data" / "tenants.duckdb"), read_only=True) as db:
        orders = db.execute("SELECT tenant, count(*), count(DISTINCT id) FROM all_orders GROUP BY 1 ORDER BY 1").fetchall()
        revenue = db.execute("SELECT tenant, orders_synced FROM tenant_revenue ORDER BY 1").fetchall()
    return orders, revenue


def test_tenants_headless(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = copy(tmp_path)
    code, out, err = run_notebook(path, capsys=capsys)
    assert code == 0, err
    assert tables(path.parent) == (
        [("sync:acme", 40, 40), ("sync:beta", 25, 25), ("sync:core", 60, 60)],
        [("acme", 40), ("beta", 25), ("core", 60)],
    )
    code, out, err = run_notebook(path, capsys=capsys)  # again: each tenant from its own bookmark
    assert code == 0, err
    orders, revenue = tables(path.parent)
    assert orders == [("sync:acme", 40, 40), ("sync:beta", 25, 25), ("sync:core", 60, 60)]  # upserted on (tenant, id)
    assert all(n < 5 for _, n in revenue), revenue  # only the rows tied with each bookmark


def test_tenants_in_a_kernel(tmp_path: Path) -> None:
    path = copy(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", path.name, "--output", "out.ipynb"],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    orders, revenue = tables(path.parent)
    assert [n for _, n, _ in orders] == [40, 25, 60] and [n for _, n in revenue] == [40, 25, 60]
