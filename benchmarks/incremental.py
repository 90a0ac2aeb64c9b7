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

    python benchmarks/incremental.py [--rows 5000000] [--changed 0.01] [--repeat 3]

The update + incremental + unchanged runs are repeated (``--repeat``) after one
full sync and their medians reported: a single run on a small shared machine
varies by 20% or more.

Starts its own throwaway PostgreSQL server (tests/support/postgres.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, JUPYTER_DI_STATE_PATH=str(path.with_suffix(".state"))),
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    read = next(line for line in proc.stdout.splitlines() if line.startswith("src ") and " source " in line)
    return elapsed, int(read.split()[3].replace(",", ""))


UPDATE_SQL = (
    # after every timestamp already in the table (as commit times are), spread over a second (few ties)
    "UPDATE events SET payload = 'changed', "
    "updated_at = (SELECT max(updated_at) FROM events) + (1 + id %% 1000) * interval '1 ms' "
    "WHERE id IN (SELECT id FROM events ORDER BY random() LIMIT %s)"
)


def update_rows(port: int, changed: int) -> None:
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="bench", autocommit=True) as c:
        c.execute(UPDATE_SQL, (changed,))


def measure(run: Callable[[], tuple[float, int]], port: int, changed: int, repeat: int) -> dict[str, Any]:
    """One full sync, then ``repeat`` times: update, incremental run, unchanged run."""
    full, _ = run()
    incremental, unchanged, read = [], [], []
    for _ in range(repeat):
        update_rows(port, changed)
        seconds, rows = run()
        incremental.append(seconds)
        read.append(rows)
        unchanged.append(run()[0])
    return {"full": full, "incremental": incremental, "unchanged": unchanged, "read": read}


def warm_child(path: Path, port: int, changed: int, repeat: int) -> None:
    """``measure`` in this one process (kernel-like); prints the times as JSON."""
    from jupyter_di.cli import main as cli_main

    os.environ["JUPYTER_DI_STATE_PATH"] = str(path.with_suffix(".state"))

    def run() -> tuple[float, int]:
        started = time.perf_counter()
        if cli_main(["run", "-q", str(path)]) != 0:
            raise SystemExit("a warm run failed")
        return time.perf_counter() - started, 0

    print(json.dumps(measure(run, port, changed, repeat)))


def warm_measure(path: Path, port: int, changed: int, repeat: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--warm-child", str(path), "--port", str(port), "--changed-rows", str(changed), "--repeat", str(repeat)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm-child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--changed-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3, help="incremental runs per destination (medians are reported)")
    args = parser.parse_args()
    if args.warm_child:
        warm_child(Path(args.warm_child), args.port, args.changed_rows, args.repeat)
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
            changed = int(args.rows * args.changed)
            for destination in ("duckdb", "postgresql"):
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / f"inc_{destination}.ipynb"
                    notebook(path, port, destination)
                    cold = measure(lambda path=path: timed_run(path), port, changed, args.repeat)
                    c.execute("DROP SCHEMA IF EXISTS dest CASCADE")
                with tempfile.TemporaryDirectory() as tmp:  # the same, in one warm process
                    path = Path(tmp) / f"warm_{destination}.ipynb"
                    notebook(path, port, destination)
                    warm = warm_measure(path, port, changed, args.repeat)
                    c.execute("DROP SCHEMA IF EXISTS dest CASCADE")
                results.append((destination, cold, warm))
    finally:
        postgres.stop(server["JDI_TEST_PG_DATA"])
    median = statistics.median
    print(f"\n{args.rows:,} rows; {args.changed:.0%} ({changed:,} rows) updated before each incremental run; medians of {args.repeat}\n")
    print(
        f"{'destination':<12} {'full sync':>10} {'incremental':>12} {'rows read':>10} {'ratio':>7} {'unchanged':>10}   "
        f"{'warm: full':>10} {'incremental':>12} {'ratio':>7} {'unchanged':>10}"
    )
    for destination, cold, warm in results:
        inc, warm_inc = median(cold["incremental"]), median(warm["incremental"])
        print(
            f"{destination:<12} {cold['full']:>9.1f}s {inc:>11.2f}s {int(median(cold['read'])):>10,} {inc / cold['full']:>6.1%} "
            f"{median(cold['unchanged']):>9.2f}s   {warm['full']:>9.1f}s {warm_inc:>11.2f}s {warm_inc / warm['full']:>6.1%} "
            f"{median(warm['unchanged']):>9.2f}s"
        )
    print("\neach incremental run, in order (the first follows the full sync):")
    for destination, cold, warm in results:
        print(
            f"  {destination:<11} process {', '.join(f'{t:.2f}s' for t in cold['incremental'])}; warm {', '.join(f'{t:.2f}s' for t in warm['incremental'])}"
        )
    print("\nfirst columns: wall time of whole `jupyter-di run` processes; warm: the runs in one process (kernel-like)")
    print("unchanged: a run right after an incremental run, with no source row changed (the fixed cost of a run)")
    print("\ntarget: incremental under 5% of the full sync")


if __name__ == "__main__":
    main()
