"""notebooks/quickstart.ipynb executed by the real batch clients, as a user runs it (issue 21).

Each client is a real process (nbconvert, ``jupyter execute``, papermill): the executed notebook
stays small (no widget state saved for panels nobody sees), nothing on stderr names jupyter_di,
and relative paths start at the notebook's folder whatever folder the client was started in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.notebooks import duckdb_query

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LIMIT = 40_000
"""Bytes an executed quickstart may take (it was 395 KB, nearly all saved widget state)."""


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A copy of notebooks/ and a clean environment (no identity from a surrounding JupyterLab)."""
    for var in ("JPY_SESSION_NAME", "JUPYTER_DI_PIPELINE", "JUPYTER_DI_STATE_PATH"):
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(
        ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".jupyter_di", "*.duckdb*", ".ipynb_checkpoints")
    )
    return tmp_path / "notebooks"


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    program = BIN / args[0] if (BIN / args[0]).exists() else Path(shutil.which(args[0]) or args[0])
    done = subprocess.run([str(program), *args[1:]], cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def check_executed(out: Path, folder: Path, stderr: str) -> None:
    size = out.stat().st_size
    assert size < LIMIT, f"{out.name} is {size:,} bytes"
    nb = json.loads(out.read_text())
    assert not nb["metadata"].get("widgets"), "widget state saved for panels nobody can see"
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    html = json.dumps(nb)
    assert "1,000 rows" in html and "orders 1000" in html  # it really ran
    # noise: nbclient's "No handler found for comm target 'jupyter_di'" and anything else of ours
    assert "comm target" not in stderr and "jupyter_di" not in stderr, stderr
    with_rows = duckdb_query(folder / "warehouse.duckdb", 'SELECT count(*) FROM "orders"')[0][0]
    assert with_rows == 1000


def test_nbconvert_keeps_the_quickstart_small_and_quiet(project):
    done = run(["jupyter", "nbconvert", "--to", "notebook", "--execute", "quickstart.ipynb", "--output", "out.ipynb"], cwd=project)
    check_executed(project / "out.ipynb", project, done.stderr)


def test_jupyter_execute_keeps_the_quickstart_small_and_quiet(project):
    out = project.parent / "executed.ipynb"
    done = run(["jupyter", "execute", "quickstart.ipynb", f"--output={out}"], cwd=project)
    check_executed(out, project, done.stderr)


def test_papermill_from_another_folder_works_in_the_notebooks_folder(project):
    """Without --cwd papermill starts the kernel in the shell's folder: `path: data` must still mean
    notebooks/data, the warehouse and the state land beside the notebook, nothing in the shell's folder."""
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    out = project.parent / "out" / "quickstart-run.ipynb"
    out.parent.mkdir()
    done = run(["papermill", str(Path("..") / "notebooks" / "quickstart.ipynb"), str(out), "--no-progress-bar"], cwd=elsewhere)
    check_executed(out, project, done.stderr)
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # no stray .jupyter_di/ or warehouse
    assert (project / ".jupyter_di" / "state.sqlite").is_file()
    # the same state as `jupyter-di run`: a second run there reads only what changed (nothing)
    from jupyter_di.state.store import StateStore

    state = StateStore(project / ".jupyter_di" / "state.sqlite").get("quickstart", "shop", "orders")
    assert state["bookmark"] == {"updated_at": "2024-03-26T16:40:00+00:00"}


def test_a_bridge_that_does_not_offer_registers_its_target_but_opens_no_comm():
    """What the session does under a batch client: the extension may still open its own comm."""
    from jupyter_di.notebook.comm import FrontendBridge
    from tests.notebook.test_comm import Factory, FakeKernel, frontend_opens

    kernel, factory = FakeKernel(), Factory()
    bridge = FrontendBridge(kernel, comm_factory=factory)
    assert bridge.register(offer=False) is True
    assert factory.opened == []
    frontend_opens(kernel)
    assert bridge.connected is True


def test_under_a_batch_client_no_panel_is_built_until_di_panel_asks(tmp_path, monkeypatch):
    from IPython.utils.capture import capture_output

    runner = shell_over_orders(tmp_path, monkeypatch)
    try:
        session = runner.session
        monkeypatch.setattr(session, "identity", dataclasses.replace(session.identity, client="nbconvert"))
        assert session.interactive is False
        with capture_output() as out:
            runner.ok("%%di_source shop\nsource: files\nconfig:\n  path: data\nstreams:\n  orders: {}\n")
        assert session.panels.panels == {}
        assert not any("application/vnd.jupyter.widget-view+json" in o.data for o in out.outputs)
        # the user asks for it: shown in any client
        with capture_output() as out:
            runner.ok("%di_panel shop")
        assert "shop" in session.panels.panels
        assert any("application/vnd.jupyter.widget-view+json" in o.data for o in out.outputs)
        assert "no block named 'nope'" in runner.error("%di_panel nope")
        # a cell id in the request means a notebook front end runs this cell: panels as usual
        session.panels.panels.clear()
        runner.ok("%%di_source shop\nsource: files\nconfig:\n  path: data\nstreams:\n  orders: {}\n", cell_id="c1")
        assert "shop" in session.panels.panels
    finally:
        runner.ip.extension_manager.unload_extension("jupyter_di")


def test_panel_values_read_as_a_person_reads_them():
    """Bookmarks: "no bookmark yet", a timestamp as a timestamp; a boolean select shows its default."""
    from jupyter_di.notebook.panels.bookmarks import readable_bookmark

    assert readable_bookmark(None) == "<i>no bookmark yet</i>"
    assert readable_bookmark({"updated_at": "2024-03-26T16:40:00+00:00", "id": 7}) == (
        "<code>updated_at</code> = <code>2024-03-26 16:40:00+00:00</code><br><code>id</code> = <code>7</code>"
    )


def test_a_boolean_setting_left_to_its_default_shows_the_default(tmp_path, monkeypatch):
    runner = shell_over_orders(tmp_path, monkeypatch)
    try:
        runner.ok("%%di_source shop\nsource: files\nconfig:\n  path: data\nstreams:\n  orders: {}\n")
        panel = runner.session.panels.panels["shop"]
        header = panel.credentials.inputs["header"]
        assert header.label == "(default: True)" and header.index == 0  # selected, not blank
        header.value = False
        assert panel.editor.cfg.config["header"] is False
        header.index = 0  # back to the default: the key leaves the YAML
        assert "header" not in panel.editor.cfg.config
        panel.sample.stream = "orders"
        panel.sample.fetch().result(timeout=30)
        assert "jdi-sample" in panel.sample.view.value and "<th>id</th>" in panel.sample.view.value
        assert 'style="text-align: left;"' in panel.sample.view.value
    finally:
        runner.ip.extension_manager.unload_extension("jupyter_di")


def test_after_a_run_the_panel_shows_the_columns_that_run_read(tmp_path, monkeypatch):
    """Before any Discover, Streams / Stream detail / Schema properties use the last run's catalog."""
    runner = shell_over_orders(tmp_path, monkeypatch, "id,name,updated_at\n1,a,2024-01-01\n")
    try:
        runner.ok("%%di_source shop\nsource: files\nconfig:\n  path: data\nstreams:\n  orders: {}\n")
        panel = runner.session.panels.panels["shop"]
        assert panel.view.stream_names() == ["orders"]
        rows = panel.columns.table.rows
        assert [r["id"] for r in rows] == ["id", "name", "updated_at"] and all(r["include"] for r in rows)
        assert panel.streams.table.rows[0]["columns"] == "all 3"
        assert "3 columns" in panel.detail.widget.children[0].value and "not discovered" not in panel.detail.widget.children[0].value
    finally:
        runner.ip.extension_manager.unload_extension("jupyter_di")


def shell_over_orders(tmp_path, monkeypatch, csv="id,name\n1,a\n"):
    """A fresh kernel shell with jupyter_di loaded, in a folder holding data/orders.csv (``csv``)."""
    from tests.support.shell import fresh_shell

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DI_STATE_PATH", str(tmp_path / "state.sqlite"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text(csv)
    return fresh_shell()
