"""Log-based sync (LOG_BASED) of many changes, against INCREMENTAL over the same changes (issue 18).

Generates a table of N rows (default 5,000,000), syncs it once with each pipeline (the LOG_BASED
stream's snapshot, the INCREMENTAL stream's full sync), then makes C changes (default 1,000,000:
60% updates, 30% inserts, 10% deletes, in transactions of 10,000) and times the next run of each:

- LOG_BASED into PostgreSQL and into DuckDB (every insert, update and delete applied);
- INCREMENTAL on ``updated_at`` into PostgreSQL and into DuckDB (the same inserts and updates; it
  cannot see the deletes).

Each run is a whole ``jupyter-di run`` process; its peak RSS is read with ``os.wait4``.
Target: 100,000 changes/s into DuckDB, 50,000 into PostgreSQL, peak RSS under 300 MB.

    python benchmarks/cdc.py [--rows 5000000] [--changes 1000000]

Starts two throwaway PostgreSQL servers (tests/support/postgres.py): the source (wal_level = logical)
and the PostgreSQL destination.  One server for both would put the destination's writes (the first
syncs' 5M rows each) into the WAL the source's slots decode, which no real deployment does.
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

PG_FINGERPRINT = (
    "SELECT count(*), sum(id), sum(amount * 100), count(*) FILTER (WHERE status = 'changed'), "
    "sum((extract(epoch FROM updated_at) * 1000000)::bigint), sum(length(note)) FROM {table}"
)
"""A content check of a whole table that PostgreSQL and DuckDB compute alike (whole numbers only)."""
DUCKDB_FINGERPRINT = (
    "SELECT count(*), sum(id), sum(amount * 100), count(*) FILTER (WHERE status = 'changed'), "
    "sum(epoch_us(updated_at)), sum(length(note)) FROM events"
)

CASES = [("LOG_BASED", "postgresql"), ("LOG_BASED", "duckdb"), ("INCREMENTAL", "postgresql"), ("INCREMENTAL", "duckdb")]


def notebook(path: Path, port: int, method: str, destination: str, dest_port: int | None = None) -> None:
    conn = f"  host: 127.0.0.1\n  port: {port}\n  username: postgres\n"
    dest_conn = f"  host: 127.0.0.1\n  port: {dest_port or port}\n  username: postgres\n"
    schema = f"d_{method.lower()}"
    dest = (
        f"%%di_destination wh --upstream src\ndestination: postgresql\nconfig:\n{dest_conn}  database: bench\n  schema: {schema}\n"
        if destination == "postgresql"
        else f"%%di_destination wh --upstream src\ndestination: duckdb\nconfig:\n  path: {path.stem}.duckdb\n"
    )
    stream = "    replication_method: LOG_BASED\n    delete_mode: hard\n"
    if method == "INCREMENTAL":
        stream = "    replication_method: INCREMENTAL\n    bookmark_properties: [updated_at]\n    key_properties: [id]\n"
    cells = [
        f"%config JupyterDI.pipeline_name = {path.stem!r}",
        f"%%di_source src\nsource: postgresql\nconfig:\n{conn}  database: bench\n  slot_retained_warn_mb: 0\nstreams:\n  events:\n{stream}",
        dest,
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def timed_run(path: Path) -> tuple[float, int, int]:
    """Wall seconds of a whole `jupyter-di run` process, the rows its source read, its peak RSS (KB)
    (reaped with ``os.wait4``: that child's peak, not the largest of all children so far)."""
    env = dict(os.environ, JUPYTER_DI_STATE_PATH=str(path.with_suffix(".state")))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(path)], stdout=out, stderr=err, cwd=path.parent, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        reason = next((line for line in stderr.splitlines() + stdout.splitlines() if line.startswith("block '")), f"exit {proc.returncode}")
        raise RunFailed(reason[:160])
    read = next(line for line in stdout.splitlines() if line.startswith("src ") and " source " in line)
    return elapsed, int(read.split()[3].replace(",", "")), usage.ru_maxrss


class RunFailed(Exception):
    """A run of a case failed: its table row says why, the other cases still run."""


def make_table(conn: psycopg.Connection, rows: int) -> None:
    conn.execute("DROP TABLE IF EXISTS events")
    conn.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2), status text, "
        "note text, updated_at timestamptz NOT NULL)"
    )
    conn.execute(
        "INSERT INTO events SELECT g, g %% 100000, (g %% 10000) / 100.0, 'new', md5(g::text), "
        "'2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, %s) g",
        (rows,),
    )
    conn.execute("CREATE INDEX ON events (updated_at, id)")
    conn.execute("VACUUM ANALYZE events")


def make_changes(conn: psycopg.Connection, rows: int, changes: int) -> dict[str, int]:
    """60% updates of random rows, 30% inserts, 10% deletes, in transactions of 10,000 changes."""
    updates, inserts = int(changes * 0.6), int(changes * 0.3)
    deletes = changes - updates - inserts
    step = 10_000
    for start in range(0, updates, step):
        n = min(step, updates - start)
        conn.execute(
            "UPDATE events SET amount = amount + 1, status = 'changed', updated_at = clock_timestamp() "
            "WHERE id IN (SELECT (random() * %s)::bigint + 1 FROM generate_series(1, %s))",
            (rows - 1, n),
        )
    for start in range(0, inserts, step):
        n = min(step, inserts - start)
        conn.execute(
            "INSERT INTO events SELECT g, g %% 100000, 1, 'inserted', md5(g::text), clock_timestamp() FROM generate_series(%s, %s) g",
            (rows + start + 1, rows + start + n),
        )
    for start in range(0, deletes, step):
        n = min(step, deletes - start)
        conn.execute("DELETE FROM events WHERE id IN (SELECT (random() * %s)::bigint + 1 FROM generate_series(1, %s))", (rows - 1, n))
    return {"updates": updates, "inserts": inserts, "deletes": deletes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    args = parser.parse_args()
    compile_package()
    print("load average (1, 5, 15 min) at the start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="jdi-cdc-"))
    env = postgres.start()
    dest_env = postgres.start()
    port, dest_port = int(env["JDI_TEST_PG_PORT"]), int(dest_env["JDI_TEST_PG_PORT"])
    try:
        for p in (port, dest_port):
            with psycopg.connect(f"host=127.0.0.1 port={p} user=postgres dbname=postgres", autocommit=True) as admin:
                admin.execute("CREATE DATABASE bench")
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=bench", autocommit=True) as conn:
            print(f"generating {args.rows:,} rows ...", flush=True)
            make_table(conn, args.rows)
            books = {}
            for method, destination in CASES:
                path = work / f"{method.lower()}_{destination}.ipynb"
                notebook(path, port, method, destination, dest_port)
                books[(method, destination)] = path
                try:
                    seconds, read, _ = timed_run(path)
                    print(f"first sync {method} -> {destination}: {read:,} rows in {seconds:.1f} s", flush=True)
                except RunFailed as exc:
                    print(f"first sync {method} -> {destination} failed: {exc}", flush=True)
            print(f"making {args.changes:,} changes ...", flush=True)
            made = make_changes(conn, args.rows, args.changes)
            print(f"  {made}", flush=True)
            results: list[tuple[str, str, float, int, int, str]] = []
            for method, destination in CASES:
                try:
                    seconds, read, rss = timed_run(books[(method, destination)])
                    results.append((method, destination, seconds, read, rss, ""))
                except RunFailed as exc:
                    results.append((method, destination, 0.0, 0, 0, f"failed: {exc}"))
                print(f"  {method} -> {destination}: {results[-1][2]:.1f} s {results[-1][5]}", flush=True)
            live = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            source_print = conn.execute(PG_FINGERPRINT.format(table="events")).fetchone()
            with psycopg.connect(f"host=127.0.0.1 port={dest_port} user=postgres dbname=bench") as check:
                pg_rows = check.execute("SELECT count(*) FROM d_log_based.events").fetchone()[0]
                pg_print = check.execute(PG_FINGERPRINT.format(table="d_log_based.events")).fetchone()
        import duckdb

        with duckdb.connect(str(work / "log_based_duckdb.duckdb"), read_only=True) as con:
            duck_rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
            duck_print = con.execute(DUCKDB_FINGERPRINT).fetchone()
            # INCREMENTAL keeps deleted rows: one row per id ever made, and the live ones equal the source's
            con.execute("ATTACH ? AS inc (READ_ONLY)", [str(work / "incremental_duckdb.duckdb")])
            inc_ids = con.execute("SELECT count(*), count(DISTINCT id) FROM inc.events").fetchone()
            con.execute("CREATE TEMP VIEW live AS SELECT * FROM inc.events SEMI JOIN main.events USING (id)")
            inc_print = con.execute(DUCKDB_FINGERPRINT.replace("FROM events", "FROM live")).fetchone()
        print()
        print(
            f"{args.changes:,} changes ({made['updates']:,} updates, {made['inserts']:,} inserts, {made['deletes']:,} deletes) on {args.rows:,} rows"
        )
        print(f"| {'run':<26} | {'seconds':>7} | {'rows read':>10} | {'changes/s':>9} | {'peak RSS MB':>11} |")
        print(f"|{'-' * 28}|{'-' * 9}|{'-' * 12}|{'-' * 11}|{'-' * 13}|")
        for method, destination, seconds, read, rss, note in results:
            label = f"{method} -> {destination}"
            if note:
                print(f"| {label:<26} | {'-':>7} | {'-':>10} | {'-':>9} | {'-':>11} | {note}")
            else:
                print(f"| {label:<26} | {seconds:7.1f} | {read:>10,} | {args.changes / seconds:9,.0f} | {rss / 1024:11.0f} |")
        print(
            f"source rows {live:,}; LOG_BASED destinations hold PostgreSQL {pg_rows:,}, DuckDB {duck_rows:,} (INCREMENTAL keeps the deleted rows)"
        )
        for name, got in (("PostgreSQL", pg_print), ("DuckDB", duck_print)):
            same = tuple(int(v) for v in got) == tuple(int(v) for v in source_print)
            print(f"LOG_BASED {name} rows {'equal' if same else 'DIFFER from'} the source's (count, ids, amounts, statuses, times, notes)")
        ever = args.rows + made["inserts"]
        same = tuple(inc_ids) == (ever, ever) and tuple(int(v) for v in inc_print) == tuple(int(v) for v in source_print)
        print(
            f"INCREMENTAL DuckDB rows {'equal' if same else 'DIFFER from'} the source's ({ever:,} ids once each; the live ones by content)"
        )
        print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        postgres.stop(env["JDI_TEST_PG_DATA"])
        postgres.stop(dest_env["JDI_TEST_PG_DATA"])


if __name__ == "__main__":
    main()
