"""Full sync vs incremental sync of a large PostgreSQL table (issue 4).

Generates a table of N rows (default 5,000,000) with an index on updated_at,
runs a notebook pipeline (PostgreSQL source, INCREMENTAL on updated_at, into
PostgreSQL and into DuckDB) once as a full sync, updates 1% of the rows, runs
it again, and prints both wall times (whole `jupyter-di run` processes).
Target: the incremental run takes under 5% of the full sync's time.

It also runs both syncs again in one warm Python process, the way a notebook
kernel runs them (`%di_run` twice): start-up, imports and exit are then paid
once, not per run.  A third run with nothing changed shows the fixed cost of
a run (process, connections, catalog and bookmark checks), the floor under
any incremental run.

    python benchmarks/incremental.py [--rows 5000000] [--changed 0.01]

Starts its own throwaway PostgreSQL server (tests/support/postgres.py).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bytecode import compile_package  # noqa: E402
from tests.support import postgres  # noqa: E402


def notebook(path: Path, port: int, destination: str) -> None:
    conn = f"  host: 127.0.0.1\n  port: {port}\n  username: postgres\n"
    dest = (
        f"%%di_destination wh --upstream src\ndestination: postgresql\nconfig:\n{conn}  database: bench\n  schema: dest\n"
        if destination == "postgresql"
        else "%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: wh.duckdb\n"
    )
    cells = [
        f"%%di_source src\nsource: postgresql\nconfig:\n{conn}  database: bench\nstreams:\n  events:\n"
        "    replication_method: INCREMENTAL\n    bookmark_properties: [updated_at]\n    key_properties: [id]\n",
        dest,
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def timed_run(path: Path) -> tuple[float, int]:
    """Wall seconds of a whole `jupyter-di run` process, and the rows the source read."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(path)], capture_output=True, text=True, env=dict(os.environ, JUPYTER_DI_STATE_PATH=str(path.with_suffix(".state"))))
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    read = next(line for line in proc.stdout.splitlines() if line.startswith("src ") and " source " in line)
    return elapsed, int(read.split()[3].replace(",", ""))


UPDATE_SQL = (
    "UPDATE events SET payload = 'changed', updated_at = now() + (id %% 1000) * interval '1 ms' "
    "WHERE id IN (SELECT id FROM events ORDER BY random() LIMIT %s)"
)


def warm_child(path: Path, port: int, changed: int) -> None:
    """Full sync, update, incremental sync, in this one process (kernel-like); prints both times."""
    import json

    from jupyter_di.cli import main as cli_main

    os.environ["JUPYTER_DI_STATE_PATH"] = str(path.with_suffix(".state"))
    times = []
    for step in ("full", "incremental", "unchanged"):
        if step == "incremental":
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="bench", autocommit=True) as c:
                c.execute(UPDATE_SQL, (changed,))
        started = time.perf_counter()
        if cli_main(["run", "-q", str(path)]) != 0:
            raise SystemExit(f"{step} run failed")
        times.append(time.perf_counter() - started)
    print(json.dumps(times))


def warm_run(path: Path, port: int, changed: int) -> tuple[float, float, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--warm-child", str(path), "--port", str(port), "--changed-rows", str(changed)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    import json

    full, incremental, unchanged = json.loads(proc.stdout.strip().splitlines()[-1])
    return full, incremental, unchanged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm-child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--changed-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    if args.warm_child:
        warm_child(Path(args.warm_child), args.port, args.changed_rows)
        return
    compile_package()
    server = postgres.start()
    port = int(server["JDI_TEST_PG_PORT"])
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="bench", autocommit=True) as c:
            print(f"generating {args.rows:,} rows ...", file=sys.stderr)
            c.execute(
                "CREATE TABLE events AS SELECT g::bigint AS id, '2024-01-01'::timestamptz + g * interval '1 second' AS updated_at, "
                "md5(g::text) AS payload, (g %% 1000)::int AS qty, (g %% 997)::numeric(12,2) AS amount, g %% 2 = 0 AS flag "
                "FROM generate_series(1, %s) g",
                (args.rows,),
            )
            c.execute("ALTER TABLE events ADD PRIMARY KEY (id)")
            c.execute("CREATE INDEX ON events (updated_at, id)")
            c.execute("VACUUM ANALYZE events")
            results = []
            for destination in ("duckdb", "postgresql"):
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f"inc_{destination}.ipynb"
                    notebook(path, port, destination)
                    full, _ = timed_run(path)
                    changed = int(args.rows * args.changed)
                    c.execute(UPDATE_SQL, (changed,))
                    incremental, read = timed_run(path)
                    unchanged, _ = timed_run(path)
                    c.execute("DROP SCHEMA IF EXISTS dest CASCADE")
                with tempfile.TemporaryDirectory() as tmp:  # the same, in one warm process
                    path = Path(tmp) / f"warm_{destination}.ipynb"
                    notebook(path, port, destination)
                    warm_full, warm_incremental, warm_unchanged = warm_run(path, port, changed)
                    c.execute("DROP SCHEMA IF EXISTS dest CASCADE")
                results.append((destination, full, incremental, unchanged, changed, read, warm_full, warm_incremental, warm_unchanged))
    finally:
        postgres.stop(server["JDI_TEST_PG_DATA"])
    print(f"\n{args.rows:,} rows; {args.changed:.0%} updated between the runs\n")
    print(f"{'destination':<12} {'full sync':>10} {'incremental':>12} {'rows changed':>13} {'rows read':>10} {'ratio':>7} {'unchanged':>10}   "
          f"{'warm: full':>10} {'incremental':>12} {'ratio':>7} {'unchanged':>10}")
    for destination, full, incremental, unchanged, changed, read, warm_full, warm_incremental, warm_unchanged in results:
        print(f"{destination:<12} {full:>9.1f}s {incremental:>11.2f}s {changed:>13,} {read:>10,} {incremental / full:>6.1%} {unchanged:>9.2f}s   "
              f"{warm_full:>9.1f}s {warm_incremental:>11.2f}s {warm_incremental / warm_full:>6.1%} {warm_unchanged:>9.2f}s")
    print("\nfirst columns: wall time of whole `jupyter-di run` processes; warm: the runs in one process (kernel-like)")
    print("unchanged: a third run with no source row changed (the fixed cost of a run)")
    print("\ntarget: incremental under 5% of the full sync")


if __name__ == "__main__":
    main()
