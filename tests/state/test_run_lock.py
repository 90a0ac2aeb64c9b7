"""Two runs of one notebook at once serialize on the run lock (issue 12): CLI + CLI, kernel + CLI.

The first run is held inside the lock by a Python block (``gate``) that waits
for a file the test creates only once the second run has said it is waiting,
so the overlap is certain and nothing depends on timing.  While the first run
is held the source changes: only the second run can see those rows, and it
must read them from the bookmark the first run left.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_di.state.api import get_bookmark
from jupyter_di.state.run_lock import lock_path, run_lock, waiting_message
from tests.support.lines import Lines
from tests.support.notebooks import INCREMENTAL_ORDERS, pg_source, start_run, write_notebook
from tests.support.orders import create_orders, differences, duckdb_rows, iso_epoch, mutate, source_max_epoch, source_rows

WAIT = 120  # seconds a test waits for a run to reach a point before it fails (not a timing assert)


def make_notebook(folder: Path, pg: dict) -> Path:
    gate = folder / "gate"
    cells = [
        "%load_ext jupyter_di\n%config JupyterDI.batch_size = 1000",
        pg_source(pg, INCREMENTAL_ORDERS),
        "%%di_destination dest --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n",
        # holds its run (and so the run lock) while the file `hold` exists and `go` does not
        f"%%di_block gate --upstream src\n@custom\ndef gate(*args, **kwargs):\n"
        f"    import os, pathlib, time\n    folder = pathlib.Path({str(gate)!r})\n"
        "    if (folder / 'hold').exists():\n"
        "        (folder / f'held-{os.getpid()}').touch()\n"
        "        while not (folder / 'go').exists():\n            time.sleep(0.05)\n"
        "    return 'passed'\n",
    ]
    gate.mkdir()
    return write_notebook(folder / "locked.ipynb", cells)


def wait_until(found: Callable[[], Any], procs: list[subprocess.Popen], what: str) -> Any:
    """``found()`` once it is truthy, polling; fails when a run ends first or after ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, f"a run ended (exit {dead[0].returncode}) before {what}"
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {WAIT} s")


def held_at_gate(gate: Path, procs: list[subprocess.Popen] = ()) -> Path:
    """The marker a run left when it reached the gate, holding the run lock."""
    return wait_until(lambda: next(iter(sorted(gate.glob("held-*"))), None), list(procs), "run reached its gate")


def start_cli(notebook: Path) -> tuple[subprocess.Popen, Lines]:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_DI_STATE_PATH"}
    proc = start_run(notebook, env=env, text=True)
    return proc, Lines(proc.stderr)


def assert_exact(notebook: Path, conn) -> None:
    """Every source row once at the destination, updated rows current, the bookmark at the source's max."""
    problems = differences(source_rows(conn), *duckdb_rows(notebook.parent / "out.duckdb"))
    assert not problems, problems
    bookmark = get_bookmark(notebook, "src", "orders")
    assert iso_epoch(bookmark["updated_at"]) == pytest.approx(source_max_epoch(conn), abs=1e-6)


def is_wait_line(line: str) -> bool:
    return line.startswith("waiting for another run of notebook 'locked'")


def lock_holder(notebook: Path) -> str:
    """The pid written in the notebook's lock file."""
    return lock_path(notebook.parent / ".jupyter_di" / "state.sqlite", "locked").read_text().strip()


@pytest.fixture
def locked(tmp_path, pg_config, pg_connect):
    """(source connection, the notebook, its gate folder): 5000 source rows, nothing synced yet."""
    conn = pg_connect()
    create_orders(conn, 5000)
    return conn, make_notebook(tmp_path, pg_config), tmp_path / "gate"


@pytest.mark.postgres
def test_two_cli_runs_of_one_notebook_serialize_and_lose_nothing(locked):
    conn, notebook, gate = locked
    (gate / "hold").touch()

    runs = [start_cli(notebook), start_cli(notebook)]  # started together
    procs = [p for p, _ in runs]
    held = held_at_gate(gate, procs)
    mutate(conn, 1, random.Random(1), id_range=5000)  # only the second run can see these rows
    waiting = wait_until(lambda: [r for r in runs if r[1].find(is_wait_line)], procs, "run said it waits")
    assert len(waiting) == 1, "exactly one run waits"
    (second, second_lines), (first, first_lines) = waiting[0], next(r for r in runs if r[0] is not waiting[0][0])
    assert held.name == f"held-{first.pid}"
    assert lock_holder(notebook) == str(first.pid)
    (gate / "go").touch()

    assert first.wait(WAIT) == 0, first_lines.text()
    assert second.wait(WAIT) == 0, second_lines.text()
    assert [line for line in second_lines.text().splitlines() if "waiting" in line] == [waiting_message("locked", first.pid)]
    assert "waiting" not in first_lines.text()
    assert_exact(notebook, conn)


@pytest.mark.postgres
def test_a_cli_run_waits_for_the_kernel_run_of_the_notebook(locked, tmp_path):
    from jupyter_client.manager import start_new_kernel

    conn, notebook, gate = locked
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_DI_STATE_PATH"}
    env["JPY_SESSION_NAME"] = str(notebook)  # what JupyterLab tells the kernel
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    try:

        def execute(code: str) -> dict:
            reply = kc.execute_interactive(code, timeout=WAIT, output_hook=lambda msg: None)
            assert reply["content"]["status"] == "ok", reply["content"]
            return reply

        kernel_pid: list[int] = []
        kc.execute_interactive(
            "import os; print(os.getpid())",
            timeout=WAIT,
            output_hook=lambda msg: kernel_pid.append(int(msg["content"]["text"])) if msg["msg_type"] == "stream" else None,
        )
        for cell in nbformat.read(notebook, as_version=4).cells:
            execute(cell.source)  # each block cell defines and runs its block: the first sync
        assert_exact(notebook, conn)

        mutate(conn, 1, random.Random(2), id_range=5000)  # the kernel's run reads these
        (gate / "hold").touch()
        msg_id = kc.execute("%di_run")  # the whole pipeline; held at the gate
        held_at_gate(gate)
        mutate(conn, 2, random.Random(3), id_range=5000)  # only the CLI run can see these
        cli, lines = start_cli(notebook)
        line = lines.wait_for(is_wait_line, WAIT)
        assert line == waiting_message("locked", kernel_pid[0]), lines.text()
        assert lock_holder(notebook) == str(kernel_pid[0])
        (gate / "go").touch()

        reply = kc.get_shell_msg(timeout=WAIT)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=WAIT)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert cli.wait(WAIT) == 0, lines.text()
        assert_exact(notebook, conn)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    """The holder's pid is in the lock file; a process killed with SIGKILL leaves the lock free."""
    state = tmp_path / ".jupyter_di" / "state.sqlite"
    name = "../odd name/x"
    path = lock_path(state, name)
    assert path.parent == state.parent and path.name.endswith(".lock") and "/" not in path.name
    assert lock_path(state, "nightly").name == "nightly.lock" and lock_path(state, "a_b") != lock_path(state, "a/b")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from jupyter_di.state.run_lock import run_lock\n"
            "with run_lock(sys.argv[1], sys.argv[2]):\n    print('locked', flush=True); sys.stdin.read()",
            str(state),
            name,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert path.read_text().strip() == str(holder.pid)

        class Waits(Exception):
            pass

        def refuse(pid):
            raise Waits(pid)

        with pytest.raises(Waits) as waited:
            with run_lock(state, name, on_wait=refuse):
                pass
        assert waited.value.args == (holder.pid,)
    finally:
        holder.kill()
        holder.wait()
    calls: list = []
    with run_lock(state, name, on_wait=calls.append):
        assert path.read_text().strip() == str(os.getpid())
        with run_lock(state, name, on_wait=calls.append):  # a run inside a run does not wait for itself
            pass
    assert calls == [] and path.read_text() == ""


def test_a_child_forked_during_a_run_does_not_keep_the_lock(tmp_path):
    import fcntl

    state = tmp_path / ".jupyter_di" / "state.sqlite"
    ready, ready_w = os.pipe()
    done_r, done = os.pipe()
    with run_lock(state, "forks"):
        child = os.fork()
        if child == 0:  # the fork handlers have run when fork() returns here
            os.write(ready_w, b"1")
            os.read(done_r, 1)  # lives on until the parent has checked
            os._exit(0)
        assert os.read(ready, 1) == b"1"
    fd = os.open(lock_path(state, "forks"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if the child kept it
    finally:
        os.close(fd)
        os.write(done, b"1")
        os.waitpid(child, 0)
