"""A `jupyter-di run` of a LOG_BASED PostgreSQL → DuckDB notebook imports no pandas, IPython or
ipywidgets (issue 18: pandas alone is about 35 MB of the run's peak RSS, and no block needs it), and
its Arrow allocations go to the pool that returns freed memory (``jupyter_di/allocators.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.connectors.postgres.test_log_based import log_pg, make_items, sql  # noqa: F401 (fixture)
from tests.support.notebooks import duckdb_query, pg_source, write_notebook

PROBE = (
    "import sys\n"
    "from jupyter_di.cli import main\n"
    "code = main(['run', '-q', sys.argv[1]])\n"
    "import pyarrow\n"
    "print(code, [m for m in ('pandas', 'IPython', 'ipywidgets') if m in sys.modules], pyarrow.default_memory_pool().backend_name)\n"
)


def expected_pool() -> str:
    """jemalloc where the CLI asks for it and this pyarrow has it (its Linux wheels do)."""
    import pyarrow as pa

    if not sys.platform.startswith("linux") or os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return pa.default_memory_pool().backend_name
    try:
        return pa.jemalloc_memory_pool().backend_name
    except NotImplementedError:
        return pa.default_memory_pool().backend_name


def run_in_a_new_process(nb, tmp_path) -> str:
    env = dict(os.environ, JUPYTER_DI_STATE_PATH=str(tmp_path / "state"))
    done = subprocess.run([sys.executable, "-c", PROBE, str(nb)], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_log_based_run_into_duckdb_imports_no_pandas_ipython_or_widgets(log_pg, tmp_path):
    make_items(log_pg, 5)
    nb = write_notebook(
        tmp_path / "cdc.ipynb",
        [
            "%load_ext jupyter_di",
            pg_source(log_pg, "  items:\n    replication_method: LOG_BASED\n    delete_mode: hard\n"),
            "%%di_destination dst --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n",
        ],
    )
    assert run_in_a_new_process(nb, tmp_path) == f"0 [] {expected_pool()}"  # the snapshot
    sql(
        log_pg,
        "DELETE FROM items WHERE id = 1",
        "UPDATE items SET v = 'two' WHERE id = 2",
        "UPDATE items SET v = 'two again' WHERE id = 2",
        "INSERT INTO items (id, v) VALUES (9, 'nine')",
    )
    assert run_in_a_new_process(nb, tmp_path) == f"0 [] {expected_pool()}"  # a change window: planned, deleted, upserted
    assert duckdb_query(tmp_path / "out.duckdb", "SELECT id, v FROM items ORDER BY id") == [
        (2, "two again"),
        (3, "v3"),
        (4, "v4"),
        (5, "v5"),
        (9, "nine"),
    ]
