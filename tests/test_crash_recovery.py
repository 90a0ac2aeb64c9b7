"""kill -9 at random moments, resume, and nothing is lost or duplicated (issues 4 and 12).

Every other run (and the last) reads the source in keyset pages (``page_rows``).

One notebook reads an INCREMENTAL PostgreSQL stream and writes it to seven
destinations at once: PostgreSQL, DuckDB, SQLite (transactional: bookmark in
the same transaction as the rows), a real Singer target
(meltanolabs-target-postgres; at-least-once plus upsert on the key), and the
files destination as JSON Lines, CSV and Parquet (upsert on the key, each
rewrite renamed over the file).  A second source block reads the same table
FULL_TABLE into a files destination.  Between runs the source gets new rows and
updated rows, many sharing one timestamp (ties at the bookmark).  Each run is
killed with SIGKILL at a random moment; after each kill the saved bookmarks must
never be ahead of the rows committed at each destination, and the FULL_TABLE
file must be one whole snapshot.  A last, uninterrupted run must leave every
destination equal to the source, row for row, with no duplicates (and no temp
file of a killed rewrite left behind).

Two moments are made deterministic (tests/support/kill_points.py):
``test_kill_between_destination_commit_and_local_state_save`` kills the process
right after a destination committed and before the local state store recorded
it; ``test_a_file_write_killed_halfway_leaves_a_whole_file`` kills it halfway
through a files destination's write (a torn append, a torn temp file).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_di.state.api import get_bookmark
from jupyter_di.state.store import StateStore
from tests.support.notebooks import INCREMENTAL_ORDERS, cli_process, pg_source, pg_yaml
from tests.support.notebooks import write_notebook as write_cells
from tests.support.orders import (
    create_orders,
    differences,
    duckdb_rows,
    file_rows,
    iso_epoch,
    mutate,
    postgres_rows,
    source_max_epoch,
    source_rows,
    sqlite_rows,
)
from tests.support.singer_venvs import singer_executable

KILLS = 12
MAX_ROUNDS = 30
FULL_SYNC_KILLS = 3
"""runs killed during the first sync (no bookmark yet).  The next two runs are let finish: the first
sync, so that later runs resume incremental syncs from a bookmark (the Singer target's full sync
outlasts the kill moments: without it no bookmark would ever be saved, and every run would be a
full sync), then an incremental run, whose duration spreads the kill moments over a whole run."""
FILES = {"files_jsonl": "jsonl", "files_csv": "csv", "files_parquet": "parquet"}
"""files destinations of the INCREMENTAL stream (keyed: upserts)"""
FULL_FILE = ("files_full", "jsonl")
"""the files destination of the FULL_TABLE stream"""
DESTINATIONS = ("pg", "duck", "lite", "singer", *FILES)
KILL_POINTS = Path(__file__).resolve().parent / "support" / "kill_points.py"


def files_cell(name: str, upstream: str, fmt: str) -> str:
    return f"%%di_destination {name} --upstream {upstream}\ndestination: files\nconfig:\n  path: {name}\n  format: {fmt}\n"


def make_notebook(path: Path, pg: dict, target: Path) -> None:
    conn = pg_yaml(pg)
    cells = [
        "%load_ext jupyter_di\n%config JupyterDI.batch_size = 2500",
        f"%%di_source src\nsource: postgresql\nconfig:\n{conn}"
        "  page_rows: \"{{ variables('page_rows', 0) }}\"\n"
        "streams:\n  orders:\n    replication_method: INCREMENTAL\n    bookmark_properties: [updated_at]\n    key_properties: [id]\n",
        f"%%di_source src_full\nsource: postgresql\nconfig:\n{conn}streams:\n  orders:\n    replication_method: FULL_TABLE\n",
        f"%%di_destination pg --upstream src\ndestination: postgresql\nconfig:\n{conn}  schema: dest_pg\n",
        "%%di_destination duck --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n",
        "%%di_destination lite --upstream src\ndestination: sqlite\nconfig:\n  path: out.sqlite\n",
        "%%di_destination singer --upstream src\ndestination: singer\nconfig:\n"
        f"  executable: {target}\n  config:\n    host: {pg['host']}\n    port: {pg['port']}\n    user: {pg['username']}\n"
        f"    password: x\n    database: {pg['database']}\n    default_target_schema: dest_singer\n",
        *(files_cell(name, "src", fmt) for name, fmt in FILES.items()),
        files_cell(FULL_FILE[0], "src_full", FULL_FILE[1]),
    ]
    write_cells(path, cells)


def destination_rows(name: str, folder: Path, conn) -> tuple[dict[int, tuple[str, float]], int]:
    """(id -> (note, epoch)), total row count — to detect duplicates."""
    if name in ("pg", "singer"):
        return postgres_rows(conn, "dest_pg" if name == "pg" else "dest_singer")
    if name == "duck":
        return duckdb_rows(folder / "out.duckdb")
    if name == "lite":
        return sqlite_rows(folder / "out.sqlite")
    fmt = FILES.get(name) or FULL_FILE[1]
    return file_rows(folder / name / f"orders.{fmt}")


def bookmark_epoch(state: dict | None) -> float | None:
    if not state or not state.get("updated_at"):
        return None
    return iso_epoch(state["updated_at"])


def assert_bookmark_not_ahead(source: dict, dest: dict, bookmark: float | None, label: str) -> None:
    if bookmark is None:
        return
    missing = [i for i, (note, ts) in source.items() if ts < bookmark - 1e-6 and dest.get(i) != (note, ts)]
    assert not missing, f"{label}: bookmark {bookmark} is ahead of committed rows; e.g. ids {missing[:5]} not committed"


def assert_whole_snapshot(rows: dict, count: int, label: str) -> None:
    """A FULL_TABLE file is one whole snapshot: ids 1..n (the source only adds ids at the end), once each."""
    assert count == len(rows), f"{label}: {count - len(rows)} duplicate rows"
    assert set(rows) == set(range(1, len(rows) + 1)), f"{label}: not a whole snapshot ({len(rows)} rows, ids up to {max(rows, default=0)})"


def leftovers(folder: Path) -> list[str]:
    """Temp files of killed rewrites and markers of killed appends still in the files destinations' folders."""
    return sorted(
        p.name for name in (*FILES, FULL_FILE[0]) if (folder / name).exists() for p in (folder / name).iterdir() if p.name.startswith(".")
    )


@pytest.mark.postgres
@pytest.mark.singer
def test_kill_minus_nine_at_random_moments_loses_and_duplicates_nothing(tmp_path, pg_config, pg_connect):
    target = singer_executable("target-postgres")
    conn = pg_connect()
    create_orders(conn, 20_000)
    notebook = tmp_path / "crash.ipynb"
    make_notebook(notebook, pg_config, target)
    state_path = tmp_path / ".jupyter_di" / "state.sqlite"
    env = dict(os.environ, JUPYTER_DI_STATE_PATH=str(state_path))
    rng = random.Random(20261125)
    kill_moments = []
    killed_mid_run = 0
    killed_from_bookmark = 0
    typical_run = 2.0  # seconds; learnt from incremental runs that finish (before their kill moment)

    for round_no in range(MAX_ROUNDS):
        if killed_mid_run >= KILLS:
            break
        if round_no:
            mutate(conn, round_no, rng)
        from_bookmark = StateStore(state_path).get("crash", "src", "orders") if state_path.exists() else None
        from_bookmark = bool((from_bookmark or {}).get("bookmark"))
        started = time.monotonic()
        page_rows = 3000 if round_no % 2 else 0  # every other run reads in keyset pages
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(notebook), "-p", f"page_rows={page_rows}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        moment = rng.uniform(0.3, 0.95 * typical_run)  # anywhere from start-up to the last commit
        if round_no in (FULL_SYNC_KILLS, FULL_SYNC_KILLS + 1):
            moment = None  # the first sync completes, then one incremental run
        kill_moments.append(moment and round(moment, 2))
        try:
            assert proc.wait(timeout=moment or 600) == 0, proc.stderr.read().decode()
            if from_bookmark:
                typical_run = time.monotonic() - started
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_mid_run += 1
            killed_from_bookmark += from_bookmark
        proc.stderr.close()
        time.sleep(0.2)  # let PostgreSQL notice the dead connections
        # invariant after every kill: no saved bookmark is ahead of what its destination committed
        source = source_rows(conn)
        saved = StateStore(state_path).get("crash", "src", "orders") if state_path.exists() else None
        for name in DESTINATIONS:
            dest, _ = destination_rows(name, tmp_path, conn)
            consumer = ((saved or {}).get("consumers") or {}).get(name)
            assert_bookmark_not_ahead(source, dest, bookmark_epoch(consumer), f"round {round_no}, {name} (local store)")
        assert_bookmark_not_ahead(
            source,
            destination_rows("pg", tmp_path, conn)[0],
            bookmark_epoch((saved or {}).get("bookmark")),
            f"round {round_no}, stream bookmark",
        )
        committed = (
            conn.execute("SELECT state FROM dest_pg._jupyter_di_state").fetchall()
            if conn.execute("SELECT to_regclass('dest_pg._jupyter_di_state')").fetchone()[0]
            else []
        )
        for (state,) in committed:
            state = state if isinstance(state, dict) else json.loads(state)
            assert_bookmark_not_ahead(
                source,
                destination_rows("pg", tmp_path, conn)[0],
                bookmark_epoch(state.get("bookmark")),
                f"round {round_no}, pg in-transaction state",
            )
        for name in FILES:  # every file is whole (it parses) and holds each key once
            rows, count = destination_rows(name, tmp_path, conn)
            assert count == len(rows), f"round {round_no}, {name}: {count - len(rows)} duplicate rows"
        assert_whole_snapshot(*destination_rows(FULL_FILE[0], tmp_path, conn), f"round {round_no}, {FULL_FILE[0]}")

    assert killed_mid_run >= 10, f"only {killed_mid_run} runs were killed mid-run (moments {kill_moments})"
    assert killed_from_bookmark >= 6, f"only {killed_from_bookmark} killed runs resumed from a bookmark (moments {kill_moments})"
    mutate(conn, MAX_ROUNDS, rng)
    final = subprocess.run(
        [sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(notebook), "-p", "page_rows=3000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert final.returncode == 0, final.stderr
    source = source_rows(conn)
    for name in (*DESTINATIONS, FULL_FILE[0]):
        problems = differences(source, *destination_rows(name, tmp_path, conn))
        assert not problems, f"{name}: {problems}"
    assert leftovers(tmp_path) == [], "a killed writer's temp files or append markers are left"


# -- a kill between the destination's commit and the local state save ------------------------------


def run_cli(notebook: Path, *kill: str) -> subprocess.CompletedProcess:
    """``jupyter-di run -q NOTEBOOK``; with ``kill`` options (tests/support/kill_points.py) it SIGKILLs itself there."""
    args = ["run", "-q", str(notebook)]
    if not kill:
        return cli_process(*args)
    return subprocess.run([sys.executable, str(KILL_POINTS), *kill, "--", *args], capture_output=True, text=True, timeout=300)


def write_notebook(path: Path, pg: dict, destination_yaml: str, source_streams: str = INCREMENTAL_ORDERS) -> Path:
    """``src`` (PostgreSQL ``orders``, INCREMENTAL on updated_at by default) -> ``dest``, in batches of 1000 rows."""
    cells = [
        "%load_ext jupyter_di\n%config JupyterDI.batch_size = 1000",
        pg_source(pg, source_streams),
        f"%%di_destination dest --upstream src\n{destination_yaml}",
    ]
    return write_cells(path, cells)


KILLED = -signal.SIGKILL

COMMIT_CASES = {
    # name: (destination YAML, rows reader, DuckDB commit window in rows)
    "duckdb": ("destination: duckdb\nconfig:\n  path: out.duckdb\n", lambda folder: duckdb_rows(folder / "out.duckdb"), 2000),
    "files": (
        "destination: files\nconfig:\n  path: files\n  format: jsonl\n",
        lambda folder: file_rows(folder / "files" / "orders.jsonl"),
        None,
    ),
}


@pytest.mark.postgres
@pytest.mark.parametrize("case", list(COMMIT_CASES))
def test_kill_between_destination_commit_and_local_state_save(case, tmp_path, pg_config, pg_connect):
    """SIGKILL right after the destination committed a batch (rows, and for DuckDB its own copy of
    the bookmark), before ``.jupyter_di/state.sqlite`` recorded it: the local store is one commit
    behind.  The next run reads that commit's rows again and must upsert them, not add them."""
    yaml, dest_rows, commit_rows = COMMIT_CASES[case]
    conn = pg_connect()
    create_orders(conn, 6000)
    notebook = write_notebook(tmp_path / "kill.ipynb", pg_config, yaml)
    window = ("--commit-rows", str(commit_rows)) if commit_rows else ()
    store = StateStore(tmp_path / ".jupyter_di" / "state.sqlite")
    rng = random.Random(12)

    def local_bookmark() -> float | None:
        return bookmark_epoch(((store.get("kill", "src", "orders") or {}).get("consumers") or {}).get("dest"))

    def assert_exact(label: str) -> None:
        problems = differences(source_rows(conn), *dest_rows(tmp_path))
        assert not problems, f"{label}: {problems}"
        assert bookmark_epoch(get_bookmark(notebook, "src", "orders")) == pytest.approx(source_max_epoch(conn), abs=1e-6)

    # 1. the first sync dies at its second commit (DuckDB: windows of 2000 rows) or its only one (files)
    at = 2 if commit_rows else 1
    killed = run_cli(notebook, "--at-local-save", "dest", str(at), *window)
    assert killed.returncode == KILLED, killed.stderr
    rows, _ = dest_rows(tmp_path)
    if commit_rows:
        assert sorted(rows) == list(range(1, 2 * commit_rows + 1))  # two windows committed
        assert local_bookmark() == pytest.approx(iso_epoch("2024-01-01T00:00:00+00:00") + commit_rows)  # the first one saved
    else:
        assert len(rows) == 6000 and local_bookmark() is None  # all rows in the file, nothing saved
    # 2. new and updated rows, then a normal run resumes exactly
    mutate(conn, 1, rng, id_range=6000)
    assert run_cli(notebook).returncode == 0
    assert_exact("after the first resume")
    saved_before = local_bookmark()

    # 3. an incremental run (new rows, updates tied at one timestamp) dies at its first commit
    mutate(conn, 2, rng, id_range=6000)
    killed = run_cli(notebook, "--at-local-save", "dest", "1", *window)
    assert killed.returncode == KILLED, killed.stderr
    assert not differences(source_rows(conn), *dest_rows(tmp_path))  # the destination has it all...
    assert local_bookmark() == saved_before < source_max_epoch(conn)  # ...the local store does not
    # 4. more changes; the next run reads the committed rows again and upserts them
    mutate(conn, 3, rng, id_range=6000)
    assert run_cli(notebook).returncode == 0
    assert_exact("after the second resume")


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_a_file_write_killed_halfway_leaves_a_whole_file(mode, tmp_path, pg_config, pg_connect):
    """A torn append, or a torn rewrite (a temp file), is undone by the next write of the file.

    append: a FULL_TABLE source appended to the file (``replication_method: INCREMENTAL`` at the
    destination, no keys: an append log), killed in its first batch; the torn rows are cut off, so
    the file holds exactly the rows of the runs that finished.  upsert: the keyed INCREMENTAL stream;
    the killed rewrite's temp file is deleted and the file equals the source.
    """
    conn = pg_connect()
    create_orders(conn, 3000)
    files = "destination: files\nconfig:\n  path: files\n  format: jsonl\n"
    if mode == "append":
        notebook = write_notebook(
            tmp_path / "torn.ipynb", pg_config, files + "streams:\n  orders:\n    replication_method: INCREMENTAL\n", "  orders: {}\n"
        )
    else:
        notebook = write_notebook(tmp_path / "torn.ipynb", pg_config, files)
    path = tmp_path / "files" / "orders.jsonl"
    assert run_cli(notebook).returncode == 0
    first_run = len(source_rows(conn))
    mutate(conn, 1, random.Random(5), id_range=3000)
    killed = run_cli(notebook, "--in-file-write", "1")  # dies halfway through its first batch
    assert killed.returncode == KILLED, killed.stderr
    if mode == "append":
        assert not path.read_bytes().endswith(b"\n") and (path.parent / ".orders.jsonl.appending").exists()  # a torn last line
    else:
        assert sorted(p.name.endswith(".tmp") for p in path.parent.iterdir()) == [False, True]  # the file, and a temp file

    mutate(conn, 2, random.Random(6), id_range=3000)
    resumed = run_cli(notebook)
    assert resumed.returncode == 0, resumed.stderr
    assert [p.name for p in path.parent.iterdir()] == ["orders.jsonl"]
    source = source_rows(conn)
    lines = [json.loads(line) for line in path.read_text().splitlines()]  # every line is whole JSON
    if mode == "append":
        assert len(lines) == first_run + len(source)
        last = {r["id"]: (r["note"], round(iso_epoch(r["updated_at"]), 6)) for r in lines[first_run:]}
        assert not differences(source, last, len(lines) - first_run)
    else:
        assert not differences(source, *file_rows(path))
