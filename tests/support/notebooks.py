"""Test notebooks: write one from cell texts, run it with `jupyter-di`, read what the run's summary says.

Every test that runs a whole notebook goes through these, so how a notebook is written, how the CLI is
called and how its summary table is read is decided once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import nbformat


def new_notebook(cells: Iterable[str]) -> nbformat.NotebookNode:
    """A notebook of code cells with these sources."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def write_notebook(path: Path, cells: Iterable[str]) -> Path:
    """Write a notebook of code cells to ``path``; returns ``path``."""
    nbformat.write(new_notebook(cells), path)
    return path


class CliResult(NamedTuple):
    """What an in-process ``jupyter-di`` call returned and printed."""

    code: int
    out: str
    err: str


def cli_main(capsys: Any, *args: str) -> CliResult:
    """``jupyter-di ARGS`` in this process (fast; the CLI's own exit code). A traceback is never a
    user's answer, so any one fails the test."""
    from jupyter_di.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err, out.out + out.err
    return CliResult(code, out.out, out.err)


def run_notebook(path: Path, *args: str, capsys: Any) -> CliResult:
    """``jupyter-di run -q NOTEBOOK ARGS`` in this process."""
    return cli_main(capsys, "run", "-q", str(path), *args)


def cli_process(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m jupyter_di.cli ARGS`` in a fresh process (for what only a process shows: exit codes
    of a real interpreter, environment, signals)."""
    cmd = [sys.executable, "-m", "jupyter_di.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=None if env is None else dict(env), cwd=cwd, timeout=timeout)


def start_run(path: Path, *, env: Mapping[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """``python -m jupyter_di.cli run -q NOTEBOOK`` started in the background, stdout discarded and
    stderr piped (where the run says what it waits for and what failed)."""
    cmd = [sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(path)]
    env = None if env is None else dict(env)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)


def rows_read(stdout: str, block: str = "src", stream: str | None = None) -> int:
    """The rows a source block read, from the run's summary line ``BLOCK source STREAM N read ...``
    (the first stream of the block unless ``stream`` is named)."""
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == block and parts[1] == "source" and (stream is None or parts[2] == stream):
            return int(parts[3].replace(",", ""))
    raise AssertionError(f"no source line for {block} {stream or ''} in:\n{stdout}")


def synced(path: Path, *args: str, capsys: Any, block: str = "src", stream: str | None = None) -> int:
    """Run the notebook, which must succeed (exit 0); the rows ``block`` read (of ``stream``)."""
    code, out, err = run_notebook(path, *args, capsys=capsys)
    assert code == 0, err
    return rows_read(out, block, stream)


def pg_yaml(pg: Mapping[str, Any]) -> str:
    """The YAML config lines (indented two spaces) connecting to the ``pg_config`` fixture's database."""
    return f"  host: {pg['host']}\n  port: {pg['port']}\n  username: {pg['username']}\n  database: {pg['database']}\n"


def pg_source(pg: Mapping[str, Any], streams: str, name: str = "src") -> str:
    """A PostgreSQL source cell reading ``streams`` (YAML lines under ``streams:``)."""
    return f"%%di_source {name}\nsource: postgresql\nconfig:\n{pg_yaml(pg)}streams:\n{streams}"


INCREMENTAL_ORDERS = "  orders:\n    replication_method: INCREMENTAL\n    bookmark_properties: [updated_at]\n    key_properties: [id]\n"
"""The ``orders`` stream (tests/support/orders.py), INCREMENTAL on ``updated_at`` with key ``id``."""


def duckdb_query(path: Path, sql: str) -> list[tuple]:
    """The rows of ``sql`` on the DuckDB file ``path``, opened read-only."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()
