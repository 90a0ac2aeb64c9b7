"""Notebook identity in every client (issue 12): one notebook, one pipeline name, one state file.

The same notebook runs through `jupyter-di run`, `jupyter nbconvert --execute`, papermill and
`jupyter execute` (real processes, real kernels) and each client continues the bookmarks the
previous one left; two notebooks in one folder keep their own; a kernel that cannot tell its
notebook refuses INCREMENTAL streams with one message and still runs FULL_TABLE ones.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from jupyter_di.notebook.identity import batch_client, notebook_candidates
from jupyter_di.state.api import get_bookmark
from tests.support.notebooks import duckdb_query, new_notebook, synced

BIN = Path(sys.executable).parent
SOURCE = """%%di_source shop -o shop_out
source: sqlite
config:
  path: {db}
streams:
  orders:
    replication_method: {method}
    bookmark_properties: [updated_at]
    key_properties: [id]
"""
# each notebook writes its own warehouse, named after its pipeline: `a.duckdb`, `b.duckdb`, `notebook.duckdb`
DEST = """%%di_destination warehouse --upstream shop
destination: duckdb
config:
  path: "{{ variables('pipeline') }}.duckdb"
"""
LOG = """import json
with open({log!r}, "a") as f:
    f.write(json.dumps({{"rows_read": shop_out.num_rows}}) + "\\n")
"""


def write_notebook(path: Path, db: Path, *, method: str = "INCREMENTAL", first: str = "%load_ext jupyter_di", extra: str = "") -> Path:
    cells = [first, SOURCE.format(db=db, method=method) + extra, DEST, LOG.format(log=str(path.parent / "reads.log"))]
    nb = new_notebook(cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells[-1].metadata["tags"] = ["jupyter-di-skip"]  # headless, the CLI's summary says what was read
    nbformat.write(nb, path)
    return path


def add_orders(db: Path, upto: int) -> None:
    """Orders 1..upto, one per hour; updated_at is the bookmark."""
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, updated_at INTEGER NOT NULL, note TEXT)")
        start = con.execute("SELECT coalesce(max(id), 0) FROM orders").fetchone()[0]
        con.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(i, 1000 + i, f"n{i}") for i in range(start + 1, upto + 1)])
    con.close()


def last_read(folder: Path) -> int:
    """Rows the source block read in the last kernel run (the notebook's last cell logs them)."""
    return json.loads((folder / "reads.log").read_text().splitlines()[-1])["rows_read"]


def cli_run(nb: Path, capsys) -> int:
    """`jupyter-di run` in this process; returns the rows the source block read."""
    return synced(nb, capsys=capsys, block="shop")


def warehouse_rows(folder: Path, name: str) -> int:
    return duckdb_query(folder / f"{name}.duckdb", 'SELECT count(*) FROM "orders"')[0][0]


@pytest.fixture
def clean_env(monkeypatch) -> dict[str, str]:
    """No identity from the test process's surroundings (a JupyterLab terminal, CI settings)."""
    for var in ("JPY_SESSION_NAME", "JUPYTER_DI_PIPELINE", "JUPYTER_DI_STATE_PATH"):
        monkeypatch.delenv(var, raising=False)
    return dict(os.environ)


def client(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    program = BIN / args[0] if (BIN / args[0]).exists() else Path(shutil.which(args[0]) or args[0])
    done = subprocess.run([str(program), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return done


def test_cli_nbconvert_papermill_and_jupyter_execute_share_one_state(tmp_path, clean_env, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    db = tmp_path / "shop.sqlite"
    add_orders(db, 10)
    nb = write_notebook(folder / "a.ipynb", db)

    assert cli_run(nb, capsys) == 10  # the CLI: name "a", state beside the notebook
    assert warehouse_rows(folder, "a") == 10
    assert get_bookmark(nb, "shop", "orders") == {"updated_at": 1010}

    # nbconvert, started (as from a JupyterLab terminal or a `!` line) with another notebook's
    # JPY_SESSION_NAME in its environment: the kernel inherits it but must not believe it.
    add_orders(db, 15)
    env = dict(clean_env, JPY_SESSION_NAME=str(tmp_path / "elsewhere" / "outer.ipynb"))
    done = client(
        ["jupyter", "nbconvert", "--to", "notebook", "--execute", "a.ipynb", "--output", str(tmp_path / "nbconvert-out.ipynb")],
        cwd=folder,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert last_read(folder) == 6  # 11..15 and the boundary row 10: it continued the CLI's bookmark
    assert warehouse_rows(folder, "a") == 15
    assert get_bookmark(nb, "shop", "orders") == {"updated_at": 1015}

    # papermill: the input notebook's identity, not the output's (written to another folder)
    add_orders(db, 20)
    (tmp_path / "runs").mkdir()
    done = client(["papermill", "a.ipynb", str(tmp_path / "runs" / "a-2024.ipynb"), "-p", "unused", "1"], cwd=folder, env=clean_env)
    assert done.returncode == 0, done.stderr
    assert last_read(folder) == 6 and warehouse_rows(folder, "a") == 20
    assert get_bookmark(nb, "shop", "orders") == {"updated_at": 1020}

    # jupyter execute, started from the parent folder with a relative path
    add_orders(db, 25)
    done = client(["jupyter", "execute", "project/a.ipynb"], cwd=tmp_path, env=clean_env)
    assert done.returncode == 0, done.stderr
    assert last_read(folder) == 6 and warehouse_rows(folder, "a") == 25
    assert get_bookmark(nb, "shop", "orders") == {"updated_at": 1025}

    # and back to the CLI: it sees what the kernels saved
    add_orders(db, 30)
    assert cli_run(nb, capsys) == 6 and warehouse_rows(folder, "a") == 30
    # one state file, one pipeline: nothing was kept under the stand-in name or beside the outputs
    assert sorted(p.name for p in tmp_path.rglob("state.sqlite")) == ["state.sqlite"]
    assert get_bookmark(folder / "notebook.ipynb", "shop", "orders") is None
    assert not (folder / "notebook.duckdb").exists()


def test_papermill_cwd_keeps_the_input_notebooks_identity(tmp_path, clean_env):
    """`papermill a.ipynb out.ipynb --cwd elsewhere` runs the kernel (and papermill) in `elsewhere`."""
    db = tmp_path / "shop.sqlite"
    add_orders(db, 10)
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    write_notebook(project / "a.ipynb", db)
    shutil.copy(project / "a.ipynb", elsewhere / "a.ipynb")  # the same relative name, resolved from the wrong folder
    env = dict(clean_env, PWD=str(project))  # what a shell in `project` sets
    done = client(["papermill", "a.ipynb", str(tmp_path / "out.ipynb"), "--cwd", str(elsewhere)], cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    assert get_bookmark(project / "a.ipynb", "shop", "orders") == {"updated_at": 1010}
    assert not (elsewhere / ".jupyter_di").exists()
    assert warehouse_rows(elsewhere, "a") == 10  # relative config paths mean the kernel's folder, as papermill intends


def test_two_notebooks_in_one_folder_keep_their_own_bookmarks(tmp_path, clean_env):
    """The reported bug: b.ipynb (a copy of a.ipynb) writing a new destination synced 6 of 1,015 rows."""
    db = tmp_path / "shop.sqlite"
    add_orders(db, 1009)
    a = write_notebook(tmp_path / "a.ipynb", db)
    shutil.copy(a, tmp_path / "b.ipynb")
    done = client(["jupyter", "nbconvert", "--to", "notebook", "--execute", "a.ipynb", "--output", "a.out"], cwd=tmp_path, env=clean_env)
    assert done.returncode == 0, done.stderr
    add_orders(db, 1015)
    done = client(["jupyter", "nbconvert", "--to", "notebook", "--execute", "b.ipynb", "--output", "b.out"], cwd=tmp_path, env=clean_env)
    assert done.returncode == 0, done.stderr
    assert last_read(tmp_path) == 1015 and warehouse_rows(tmp_path, "b") == 1015  # a full first sync, not 6 rows
    assert warehouse_rows(tmp_path, "a") == 1009
    assert get_bookmark(tmp_path / "a.ipynb", "shop", "orders") == {"updated_at": 2009}
    assert get_bookmark(tmp_path / "b.ipynb", "shop", "orders") == {"updated_at": 2015}


def execute_two(tmp_path: Path, env: dict[str, str], *, b_extra: str) -> subprocess.CompletedProcess:
    """`jupyter execute a.ipynb b.ipynb`: one process, a kernel for each notebook in turn."""
    db = tmp_path / "shop.sqlite"
    add_orders(db, 10)
    write_notebook(tmp_path / "a.ipynb", db)
    write_notebook(tmp_path / "b.ipynb", db, extra=b_extra)
    return client(["jupyter", "execute", "a.ipynb", "b.ipynb"], cwd=tmp_path, env=env)


def test_jupyter_execute_with_two_notebooks_tells_them_apart_by_their_cells(tmp_path, clean_env):
    """nbclient sends no cell ids: the kernel matches the code it ran against each candidate."""
    done = execute_two(tmp_path, clean_env, b_extra="# b keeps its own bookmarks\n")
    assert done.returncode == 0, done.stderr
    assert warehouse_rows(tmp_path, "a") == 10 and warehouse_rows(tmp_path, "b") == 10
    assert get_bookmark(tmp_path / "a.ipynb", "shop", "orders") == {"updated_at": 1010}
    assert get_bookmark(tmp_path / "b.ipynb", "shop", "orders") == {"updated_at": 1010}


def test_identical_notebooks_in_one_jupyter_execute_refuse_to_guess(tmp_path, clean_env):
    done = execute_two(tmp_path, clean_env, b_extra="")
    assert done.returncode != 0
    assert "cannot tell which notebook it runs" in done.stderr and "JupyterDI.pipeline_name" in done.stderr
    assert get_bookmark(tmp_path / "notebook.ipynb", "shop", "orders") is None
    assert not (tmp_path / "a.duckdb").exists()


def run_in_memory(nb: nbformat.NotebookNode, cwd: Path) -> None:
    """nbclient driven from this process: no file, no front end, a parent (pytest) that names none."""
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()


def in_memory_notebook(db: Path, log_dir: Path, *, method: str, first: str = "%load_ext jupyter_di") -> nbformat.NotebookNode:
    cells = [first, SOURCE.format(db=db, method=method), DEST, LOG.format(log=str(log_dir / "reads.log"))]
    return new_notebook(cells)


def test_an_unidentified_kernel_refuses_incremental_and_runs_full_table(tmp_path, clean_env):
    db = tmp_path / "shop.sqlite"
    add_orders(db, 10)
    with pytest.raises(CellExecutionError) as failed:
        run_in_memory(in_memory_notebook(db, tmp_path, method="INCREMENTAL"), tmp_path)
    message = str(failed.value)
    assert "block 'shop', stream 'orders'" in message
    assert "cannot tell which notebook it runs" in message
    assert '%config JupyterDI.pipeline_name = "my_pipeline"' in message and "JUPYTER_DI_PIPELINE" in message
    assert not (tmp_path / "notebook.duckdb").exists()

    run_in_memory(in_memory_notebook(db, tmp_path, method="FULL_TABLE"), tmp_path)
    assert last_read(tmp_path) == 10 and warehouse_rows(tmp_path, "notebook") == 10

    # naming the pipeline (after %load_ext, as the message says) makes INCREMENTAL work, state in the cwd
    named = '%load_ext jupyter_di\n%config JupyterDI.pipeline_name = "nightly"'
    run_in_memory(in_memory_notebook(db, tmp_path, method="INCREMENTAL", first=named), tmp_path)
    assert warehouse_rows(tmp_path, "nightly") == 10
    assert get_bookmark(tmp_path / "nightly.ipynb", "shop", "orders") == {"updated_at": 1010}


def test_an_environment_name_identifies_a_kernel(tmp_path, clean_env, monkeypatch):
    db = tmp_path / "shop.sqlite"
    add_orders(db, 10)
    monkeypatch.setenv("JUPYTER_DI_PIPELINE", "from_env")
    run_in_memory(in_memory_notebook(db, tmp_path, method="INCREMENTAL"), tmp_path)
    assert get_bookmark(tmp_path / "from_env.ipynb", "shop", "orders") == {"updated_at": 1010}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # nbconvert: every input, never --output's value; a bare name gets .ipynb; globs expand
        (["python", "/x/bin/jupyter-nbconvert", "--to", "notebook", "--execute", "a.ipynb", "--output", "b.ipynb"], ["a.ipynb"]),
        (["python", "/x/bin/jupyter-nbconvert", "--execute", "--ExecutePreprocessor.timeout", "60", "a", "--to=html"], ["a.ipynb"]),
        (["python", "-m", "nbconvert", "--execute", "--to", "notebook", "*.ipynb"], ["a.ipynb", "b.ipynb"]),
        # papermill: the first positional is the input; -p takes two values
        (["python3.11", "/x/bin/papermill", "-p", "out", "b.ipynb", "--cwd", "/tmp", "a.ipynb", "b.ipynb"], ["a.ipynb"]),
        (["/x/bin/jupyter-execute", "a.ipynb", "b.ipynb", "--output=out_{notebook_name}"], ["a.ipynb", "b.ipynb"]),
    ],
)
def test_command_lines_of_batch_clients(tmp_path, argv, expected):
    for name in ("a.ipynb", "b.ipynb"):
        (tmp_path / name).write_text("{}")
    program, args = batch_client(argv)
    assert [p.name for p in notebook_candidates(program, args, [tmp_path])] == expected


def test_other_programs_are_not_batch_clients():
    assert batch_client(["python", "/x/bin/jupyter-lab", "a.ipynb"]) is None  # JupyterLab says JPY_SESSION_NAME
    assert batch_client(["python", "-m", "pytest", "tests/a.ipynb"]) is None


def test_psutil_and_proc_see_the_same_parent(monkeypatch):
    """psutil is optional (ipykernel 7 does not need it); Linux /proc must give the same answer."""
    psutil = pytest.importorskip("psutil")
    from jupyter_di.notebook import identity

    with_psutil = identity.process_info(os.getpid())
    assert with_psutil is not None and with_psutil.ppid == psutil.Process().ppid()
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil -> ImportError
    assert identity.process_info(os.getpid()) == with_psutil


def test_a_configured_pipeline_name_is_the_same_for_the_cli_and_a_kernel(tmp_path, clean_env, capsys):
    """`%config JupyterDI.pipeline_name = "..."` names the state in the kernel; the CLI and
    `jupyter_di.state.api` must read the notebook's line too, or they keep a second state."""
    db = tmp_path / "shop.sqlite"
    add_orders(db, 10)
    nb = write_notebook(tmp_path / "named.ipynb", db, first='%load_ext jupyter_di\n%config JupyterDI.pipeline_name = "shop_sync"')
    done = client(
        ["jupyter", "nbconvert", "--to", "notebook", "--execute", "named.ipynb", "--output", "named.out"], cwd=tmp_path, env=clean_env
    )
    assert done.returncode == 0, done.stderr
    assert last_read(tmp_path) == 10 and warehouse_rows(tmp_path, "shop_sync") == 10
    add_orders(db, 13)
    assert cli_run(nb, capsys) == 1 + 3  # continues the kernel's bookmark: the tie and three new rows
    assert get_bookmark(nb, "shop", "orders") == {"updated_at": 1013}
    with sqlite3.connect(tmp_path / ".jupyter_di" / "state.sqlite") as con:
        assert {p for (p,) in con.execute("SELECT pipeline FROM stream_state")} == {"shop_sync"}
