"""kill -9 at random moments, resume, and nothing is lost or duplicated (issue 4).

Every other run (and the last) reads the source in keyset pages (``page_rows``).

One notebook reads an INCREMENTAL PostgreSQL stream and writes it to four
destinations at once: PostgreSQL, DuckDB, SQLite (transactional: bookmark in
the same transaction as the rows) and a real Singer target
(meltanolabs-target-postgres; at-least-once plus upsert on the key).  Between
runs the source gets new rows and updated rows, many sharing one timestamp (ties
at the bookmark).  Each run is killed with SIGKILL at a random moment; after each
kill the saved bookmarks must never be ahead of the rows committed at each
destination.  A last, uninterrupted run must leave every destination equal to
the source, row for row, with no duplicates.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import nbformat
import psycopg
import pytest

from jupyter_di.state.store import StateStore
from tests.support.singer_venvs import singer_executable

pytestmark = [pytest.mark.postgres, pytest.mark.singer]

KILLS = 12
MAX_ROUNDS = 30
DESTINATIONS = ("pg", "duck", "lite", "singer")


def make_notebook(path: Path, pg: dict, target: Path) -> None:
    conn = f"  host: {pg['host']}\n  port: {pg['port']}\n  username: {pg['username']}\n"
    cells = [
        "%load_ext jupyter_di\n%config JupyterDI.batch_size = 2500",
        f"%%di_source src\nsource: postgresql\nconfig:\n{conn}  database: {pg['database']}\n"
        "  page_rows: \"{{ variables('page_rows', 0) }}\"\n"
        "streams:\n  orders:\n    replication_method: INCREMENTAL\n    bookmark_properties: [updated_at]\n    key_properties: [id]\n",
        f"%%di_destination pg --upstream src\ndestination: postgresql\nconfig:\n{conn}  database: {pg['database']}\n  schema: dest_pg\n",
        "%%di_destination duck --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n",
        "%%di_destination lite --upstream src\ndestination: sqlite\nconfig:\n  path: out.sqlite\n",
        "%%di_destination singer --upstream src\ndestination: singer\nconfig:\n"
        f"  executable: {target}\n  config:\n    host: {pg['host']}\n    port: {pg['port']}\n    user: {pg['username']}\n"
        f"    password: x\n    database: {pg['database']}\n    default_target_schema: dest_singer\n",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def mutate(conn: psycopg.Connection, round_no: int, rng: random.Random) -> None:
    """New rows and updated rows; each statement gives all its rows one timestamp (ties)."""
    conn.execute(
        "INSERT INTO orders (id, updated_at, note) SELECT g, clock_timestamp(), 'new' || %s "
        "FROM generate_series((SELECT coalesce(max(id), 0) + 1 FROM orders), (SELECT coalesce(max(id), 0) + 400 FROM orders)) g",
        (round_no,),
    )
    ids = rng.sample(range(1, 20_000), 300)
    conn.execute("UPDATE orders SET note = %s, updated_at = now() WHERE id = ANY(%s)", (f"v{round_no}", ids))


def source_rows(conn) -> dict[int, tuple[str, float]]:
    rows = conn.execute("SELECT id, note, extract(epoch FROM updated_at)::float8 FROM orders").fetchall()
    return {r[0]: (r[1], round(r[2], 6)) for r in rows}


def destination_rows(name: str, folder: Path, conn) -> tuple[dict[int, tuple[str, float]], int]:
    """(id -> (note, epoch)), total row count — to detect duplicates."""
    sql = 'SELECT id, note, {epoch} FROM {table}'
    if name == "pg" or name == "singer":
        schema = "dest_pg" if name == "pg" else "dest_singer"
        exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.orders",)).fetchone()[0]
        if not exists:
            return {}, 0
        rows = conn.execute(f'SELECT id, note, extract(epoch FROM updated_at)::float8 FROM "{schema}"."orders"').fetchall()
    elif name == "duck":
        if not (folder / "out.duckdb").exists():
            return {}, 0
        with duckdb.connect(str(folder / "out.duckdb"), read_only=True) as con:
            if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'").fetchone()[0]:
                return {}, 0
            rows = con.execute('SELECT id, note, epoch_us(updated_at) / 1e6 FROM "orders"').fetchall()
    else:
        if not (folder / "out.sqlite").exists():
            return {}, 0
        with sqlite3.connect(folder / "out.sqlite") as con:
            if not con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'orders'").fetchone()[0]:
                return {}, 0
            rows = con.execute('SELECT id, note, updated_at FROM "orders"').fetchall()
            rows = [(i, n, _iso_epoch(u)) for i, n, u in rows]
    del sql
    return {r[0]: (r[1], round(float(r[2]), 6)) for r in rows}, len(rows)


def _iso_epoch(value) -> float:
    import datetime as dt

    if isinstance(value, (int, float)):
        return float(value)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def bookmark_epoch(state: dict | None) -> float | None:
    if not state or not state.get("updated_at"):
        return None
    return _iso_epoch(state["updated_at"])


def assert_bookmark_not_ahead(source: dict, dest: dict, bookmark: float | None, label: str) -> None:
    if bookmark is None:
        return
    missing = [i for i, (note, ts) in source.items() if ts < bookmark - 1e-6 and dest.get(i) != (note, ts)]
    assert not missing, f"{label}: bookmark {bookmark} is ahead of committed rows; e.g. ids {missing[:5]} not committed"


def test_kill_minus_nine_at_random_moments_loses_and_duplicates_nothing(tmp_path, pg_config, pg_connect):
    target = singer_executable("target-postgres")
    conn = pg_connect()
    conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, note text)")
    conn.execute("INSERT INTO orders SELECT g, '2024-01-01'::timestamptz + g * interval '1 second', 'first' FROM generate_series(1, 20000) g")
    notebook = tmp_path / "crash.ipynb"
    make_notebook(notebook, pg_config, target)
    state_path = tmp_path / ".jupyter_di" / "state.sqlite"
    env = dict(os.environ, JUPYTER_DI_STATE_PATH=str(state_path))
    rng = random.Random(20261125)
    kill_moments = []
    killed_mid_run = 0
    typical_run = 2.0  # seconds; learnt from runs that finish before their kill moment

    for round_no in range(MAX_ROUNDS):
        if killed_mid_run >= KILLS:
            break
        if round_no:
            mutate(conn, round_no, rng)
        started = time.monotonic()
        page_rows = 3000 if round_no % 2 else 0  # every other run reads in keyset pages
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(notebook), "-p", f"page_rows={page_rows}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        moment = rng.uniform(0.3, 0.95 * typical_run)  # anywhere from start-up to the last commit
        kill_moments.append(round(moment, 2))
        try:
            proc.wait(timeout=moment)
            typical_run = time.monotonic() - started
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_mid_run += 1
        time.sleep(0.2)  # let PostgreSQL notice the dead connections
        # invariant after every kill: no saved bookmark is ahead of what its destination committed
        source = source_rows(conn)
        saved = StateStore(state_path).get("crash", "src", "orders") if state_path.exists() else None
        for name in DESTINATIONS:
            dest, _ = destination_rows(name, tmp_path, conn)
            consumer = ((saved or {}).get("consumers") or {}).get(name)
            assert_bookmark_not_ahead(source, dest, bookmark_epoch(consumer), f"round {round_no}, {name} (local store)")
        assert_bookmark_not_ahead(source, destination_rows("pg", tmp_path, conn)[0], bookmark_epoch((saved or {}).get("bookmark")), f"round {round_no}, stream bookmark")
        committed = conn.execute("SELECT state FROM dest_pg._jupyter_di_state").fetchall() if conn.execute("SELECT to_regclass('dest_pg._jupyter_di_state')").fetchone()[0] else []
        for (state,) in committed:
            state = state if isinstance(state, dict) else json.loads(state)
            assert_bookmark_not_ahead(source, destination_rows("pg", tmp_path, conn)[0], bookmark_epoch(state.get("bookmark")), f"round {round_no}, pg in-transaction state")

    assert killed_mid_run >= 10, f"only {killed_mid_run} runs were killed mid-run (moments {kill_moments})"
    mutate(conn, MAX_ROUNDS, rng)
    final = subprocess.run([sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(notebook), "-p", "page_rows=3000"], env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    source = source_rows(conn)
    for name in DESTINATIONS:
        dest, count = destination_rows(name, tmp_path, conn)
        assert count == len(dest), f"{name}: {count - len(dest)} duplicate rows"
        missing = sorted(set(source) - set(dest))
        extra = sorted(set(dest) - set(source))
        stale = sorted(i for i in source if i in dest and dest[i] != source[i])
        assert not missing and not extra and not stale, f"{name}: missing {missing[:5]}, extra {extra[:5]}, stale {stale[:5]}"
        assert len(dest) == len(source)
