"""notebooks/quickstart.ipynb end to end in a real Jupyter kernel (nbclient), as a user runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_executes_in_a_kernel_and_fills_the_warehouse(tmp_path, monkeypatch):
    shutil.copytree(
        ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".jupyter_di", "*.duckdb*", ".ipynb_checkpoints")
    )
    path = tmp_path / "notebooks" / "quickstart.ipynb"
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))  # what JupyterLab tells the kernel
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()

    with duckdb.connect(str(path.parent / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute('SELECT count(*) FROM "orders"').fetchone()[0] == 1000
        assert con.execute('SELECT count(*) FROM "customers"').fetchone()[0] == 50
        enriched = con.execute('SELECT count(*), count(DISTINCT id) FROM "enriched_orders"').fetchone()
        assert enriched[0] == enriched[1] and 700 < enriched[0] < 1000
        assert con.execute('SELECT count(*) FROM "enriched_orders" WHERE city IS NULL').fetchone()[0] == 0

    outputs = {i: c.outputs for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    texts = []
    for cell_outputs in outputs.values():
        for out in cell_outputs:
            texts.append(out.get("text", "") + str(out.get("data", {}).get("text/html", "")))
    html = "\n".join(texts)
    assert "1,000 rows" in html  # the source preview says how many rows it fetched
    assert "orders 1000" in html  # the check cell's printout
    assert "Traceback" not in html
    # previews are bounded: no output holds all 1,000 order rows
    assert max(len(t) for t in texts) < 60_000

    # the state lives beside the notebook, under the notebook's name, shared with the CLI
    from jupyter_di.state.store import StateStore

    state = StateStore(path.parent / ".jupyter_di" / "state.sqlite").get("quickstart", "shop", "orders")
    assert state["bookmark"] == {"updated_at": "2024-03-26T16:40:00+00:00"}
    assert state["consumers"] == {"warehouse": {"updated_at": "2024-03-26T16:40:00+00:00"}}
