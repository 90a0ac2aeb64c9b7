"""Sync benchmark: PostgreSQL -> PostgreSQL / DuckDB, jupyter-di against a raw COPY pipe and dlt.

    python benchmarks/sync.py                 # 1,000,000 rows, its own throwaway server
    python benchmarks/sync.py --rows 5000000
    python benchmarks/sync.py --host H --port P --username U   # an existing server (password: $PGPASSWORD)

The source table is generated server side with generate_series: bigint id
(primary key), timestamptz updated_at, text, integer, numeric(12,2), boolean,
jsonb and a nullable text with ~20% NULLs.  Every case runs in a child
process; the parent reads the child's peak RSS from ``os.wait4`` and the child
reports the seconds of its transfer (connect .. last commit, without
interpreter start-up and imports; the wall column includes them).  Each case
checks the row count at its destination.

dlt is a benchmark-only dependency: it is installed into its own virtualenv
(/tmp/bench-dlt) on first use; if that fails its rows say "n/a" and why.

DuckDB's own PostgreSQL scanner (``ATTACH ... (TYPE postgres)`` then ``CREATE TABLE AS``) is the
reference a DuckDB user would pick.  Its extension comes from the ``duckdb-extension-postgres-scanner``
wheel, which ships it for one DuckDB version (1.5.5, the newest it has), so it runs in a virtualenv of
its own with that DuckDB (~/.cache/jupyter-di/bench-duckdb-scanner-1.5.5, made on first use).  The
``jdi-*duckdb*`` cases use whatever DuckDB this Python has: with the ``postgres-scanner`` extra
installed, jupyter-di reads such a stream with the same extension (``connectors/duckdb/postgres_scan.py``);
the table's header says which.  ``jdi-pg`` is the connector-level sync
(``sync.engine.sync_stream``: the source server's COPY data passes through when the column types are the
same, as in this table), ``jdi-pg-arrow`` the same through Arrow.  The ``-parts`` cases read with
``partitions: auto``; the ``-dask`` cases run the notebook with ``--executor dask`` on a LocalCluster
of 2 worker processes started before the clock starts (its start-up is in the wall column).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCE_TABLE = "bench_src"
DLT_VENV = Path("/tmp/bench-dlt")
SCANNER_VENV = Path.home() / ".cache" / "jupyter-di" / "bench-duckdb-scanner-1.5.5"
SCANNER_PACKAGES = ["duckdb==1.5.5", "duckdb-extension-postgres-scanner==1.5.5"]
DLT_PACKAGES = ["dlt[duckdb,postgres,sql_database]", "connectorx", "pyarrow", "sqlalchemy", "pandas", "psycopg[binary]"]
PSQL = Path(os.environ.get("JDI_PG_BIN", "/usr/lib/postgresql/15/bin")) / "psql"

GENERATE_SQL = f"""
DROP TABLE IF EXISTS {SOURCE_TABLE};
CREATE TABLE {SOURCE_TABLE} AS
SELECT g::bigint AS id,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS updated_at,
       'customer-' || g || '-' || md5(g::text) AS name,
       (g % 1000)::integer AS quantity,
       ((g % 100000) / 100.0)::numeric(12,2) AS price,
       (g % 2 = 0) AS active,
       jsonb_build_object('k', g, 'tag', 't' || (g % 10), 'ok', g % 3 = 0) AS attrs,
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END AS note
FROM generate_series(1, %(rows)s) AS g;
ALTER TABLE {SOURCE_TABLE} ADD PRIMARY KEY (id);
VACUUM ANALYZE {SOURCE_TABLE};
"""


# -- connection settings passed to children (never the password: it travels in PGPASSWORD) --


def pg_env(conn: dict) -> dict:
    env = dict(os.environ)
    env.update(PGHOST=conn["host"], PGPORT=str(conn["port"]), PGUSER=conn["username"], PGDATABASE=conn["database"])
    return env


def jdi_config(conn: dict, schema: str = "public") -> dict:
    return {**conn, "password": os.environ.get("PGPASSWORD", ""), "schema": schema}


def psycopg_connect(conn: dict):
    import psycopg

    return psycopg.connect(
        host=conn["host"],
        port=conn["port"],
        user=conn["username"],
        dbname=conn["database"],
        password=os.environ.get("PGPASSWORD") or None,
        autocommit=True,
    )


# -- cases (each runs in a child: `sync.py --child CASE --conn JSON --work DIR`) ----------------


def raw_pipe_argv(conn: dict) -> list[str]:
    """The baseline: psql's binary COPY out piped into psql's binary COPY in (the child is this shell)."""
    with psycopg_connect(conn) as c:
        c.execute("DROP TABLE IF EXISTS bench_raw")
        c.execute(f"CREATE TABLE bench_raw (LIKE {SOURCE_TABLE})")
    pipe = f"{PSQL} -X -q -c 'COPY {SOURCE_TABLE} TO STDOUT (FORMAT binary)' | {PSQL} -X -q -c 'COPY bench_raw FROM STDIN (FORMAT binary)'"
    return ["bash", "-o", "pipefail", "-c", pipe]


def _jdi_sync(source, destination, settings) -> None:
    """Drive the connectors the way the sync engine does (through the engine when it is there)."""
    from jupyter_di.connectors.base import Chunk, ReadRequest, WriteRequest

    try:
        from jupyter_di.sync import engine
    except ImportError:
        engine = None
    if engine is not None and hasattr(engine, "sync_stream"):
        engine.sync_stream(source, destination, settings)
        return
    reader = source.read(ReadRequest(settings))
    if engine is not None and hasattr(engine, "write_stream"):
        engine.write_stream(destination, settings, reader)
        return
    destination.write(WriteRequest(settings, reader.schema), (Chunk(b) for b in reader), lambda rows, state: None)


def child_jdi_pg(conn: dict, work: Path, partitions: str | None = None, arrow: bool = False) -> float:
    """``sync_stream``: the source server's COPY data passed through as it is (same column types); with
    ``arrow`` (or ``partitions``) through Arrow: decoded by ADBC, encoded again by ADBC."""
    from jupyter_di.connectors.base import ReadRequest, StreamSettings
    from jupyter_di.connectors.postgres import PostgresDestination, PostgresSource
    from jupyter_di.sync.engine import write_stream

    with psycopg_connect(conn) as c:
        c.execute("DROP SCHEMA IF EXISTS bench_out CASCADE")
    started = time.perf_counter()
    with PostgresSource(jdi_config(conn)) as src, PostgresDestination(jdi_config(conn, "bench_out")) as dst:
        settings = StreamSettings(SOURCE_TABLE, partitions=partitions)
        if arrow:
            write_stream(dst, settings, src.read(ReadRequest(settings)))
        else:
            _jdi_sync(src, dst, settings)
    return time.perf_counter() - started


def child_jdi_read(conn: dict, work: Path, partitions: str | int | None = None) -> float:
    """Read only, rows discarded: one part's rate (the scaling argument in docs/architecture.md)."""
    from jupyter_di.connectors.base import ReadRequest, StreamSettings
    from jupyter_di.connectors.postgres import PostgresSource

    started = time.perf_counter()
    rows = 0
    with PostgresSource(jdi_config(conn)) as src:
        for batch in src.read(ReadRequest(StreamSettings(SOURCE_TABLE, partitions=partitions))):
            rows += batch.num_rows
    return time.perf_counter() - started


def child_jdi_duckdb(conn: dict, work: Path, partitions: str | None = None, arrow: bool = False) -> float:
    from jupyter_di.connectors.base import StreamSettings
    from jupyter_di.connectors.postgres import PostgresSource
    from jupyter_di.connectors.registry import destination_class

    (work / "jdi.duckdb").unlink(missing_ok=True)
    duckdb_destination = destination_class("duckdb")  # imports DuckDB: the scanner's script imports it before its clock too
    import adbc_driver_postgresql  # noqa: F401 - imported by the first read otherwise, inside the clock
    import duckdb

    # DuckDB 1.5 imports pandas and numpy at its first bound parameter (0.26 s): an import, so before the clock
    # like the others (the scanner's script binds none; the notebook cases keep it inside their clock)
    duckdb.connect().execute("SELECT ?", [0])

    started = time.perf_counter()
    config = {"path": str(work / "jdi.duckdb"), "postgres_scanner": not arrow}
    with PostgresSource(jdi_config(conn)) as src, duckdb_destination(config) as dst:
        _jdi_sync(src, dst, StreamSettings(SOURCE_TABLE, partitions=partitions))
    return time.perf_counter() - started


def child_jdi_notebook(conn: dict, work: Path, destination: str, partitions: str | None = None, dask: bool = False) -> float:
    """The whole product path: a notebook with a source and a destination block, `jupyter-di run`
    (with ``dask``: on a LocalCluster of 2 worker processes started before the clock starts)."""
    from jupyter_di.cli import main as cli_main

    pg = f"  host: {conn['host']}\n  port: {conn['port']}\n  username: {conn['username']}\n  database: {conn['database']}\n"
    if destination == "postgresql":
        with psycopg_connect(conn) as c:
            c.execute("DROP SCHEMA IF EXISTS bench_nb CASCADE")
        dest = f"destination: postgresql\nconfig:\n{pg}  schema: bench_nb\n"
    else:
        (work / "nb.duckdb").unlink(missing_ok=True)
        dest = f"destination: duckdb\nconfig:\n  path: {work / 'nb.duckdb'}\n"
    stream = f"{{partitions: {partitions}}}" if partitions else "{}"
    cells = [
        f"%%di_source src\nsource: postgresql\nconfig:\n{pg}streams:\n  {SOURCE_TABLE}: {stream}\n",
        f"%%di_destination dst --upstream src\n{dest}",
    ]
    path = work / f"bench_{destination}.ipynb"
    # plain JSON: importing nbformat (jsonschema) would add 30 MB to this process that `jupyter-di run` never has
    code_cells = [
        {"id": f"cell{i}", "cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
        for i, c in enumerate(cells)
    ]
    path.write_text(json.dumps({"cells": code_cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    os.environ["JUPYTER_DI_STATE_PATH"] = str(work / "nb-state.sqlite")
    args = ["run", "-q", str(path)]
    cluster = None
    if dask:
        import logging

        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR
        )
        args += ["--executor", "dask", "--scheduler", cluster.scheduler_address]
    try:
        started = time.perf_counter()
        code = cli_main(args)
        seconds = time.perf_counter() - started
        if cluster is not None:
            WORKER_RSS_MB.extend(sorted(_peak_rss_mb(v) for v in cluster_client_run(cluster, _self_peak_rss_kb).values()))
    finally:
        if cluster is not None:
            cluster.close()
    if code != 0:
        raise SystemExit(f"jupyter-di run failed with exit code {code}")
    return seconds


WORKER_RSS_MB: list[float] = []
"""Peak RSS of each Dask worker process of a child's run (reported beside the child's own)."""


def _self_peak_rss_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_mb(kb: int) -> float:
    return round(kb / 1024)


def cluster_client_run(cluster, fn) -> dict:
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        return client.run(fn)


CHILDREN = {
    "jdi-read": child_jdi_read,
    "jdi-read-parts": lambda conn, work: child_jdi_read(conn, work, 2),
    "jdi-pg": child_jdi_pg,
    "jdi-pg-arrow": lambda conn, work: child_jdi_pg(conn, work, arrow=True),
    "jdi-duckdb": child_jdi_duckdb,
    "jdi-pg-parts": lambda conn, work: child_jdi_pg(conn, work, "auto"),
    "jdi-duckdb-parts": lambda conn, work: child_jdi_duckdb(conn, work, "auto"),
    "jdi-duckdb-arrow": lambda conn, work: child_jdi_duckdb(conn, work, arrow=True),
    "jdi-nb-pg": lambda conn, work: child_jdi_notebook(conn, work, "postgresql"),
    "jdi-nb-duckdb": lambda conn, work: child_jdi_notebook(conn, work, "duckdb"),
    "jdi-nb-pg-parts": lambda conn, work: child_jdi_notebook(conn, work, "postgresql", "auto"),
    "jdi-nb-duckdb-parts": lambda conn, work: child_jdi_notebook(conn, work, "duckdb", "auto"),
    "jdi-nb-pg-dask": lambda conn, work: child_jdi_notebook(conn, work, "postgresql", "auto", dask=True),
    "jdi-nb-pg-dask-one": lambda conn, work: child_jdi_notebook(conn, work, "postgresql", dask=True),
    "jdi-nb-duckdb-dask": lambda conn, work: child_jdi_notebook(conn, work, "duckdb", "auto", dask=True),
}

SCANNER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import duckdb, duckdb_extension_postgres_scanner as wheel
    conn, work, table = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    path = os.path.join(work, "scanner.duckdb")
    if os.path.exists(path):
        os.remove(path)
    extension = os.path.join(list(wheel.__path__)[0], "extensions", "v" + duckdb.__version__, "postgres_scanner.duckdb_extension")
    started = time.perf_counter()
    con = duckdb.connect(path)
    con.load_extension(extension)
    dsn = "host={host} port={port} user={username} dbname={database}".format(**conn)
    con.execute("ATTACH '" + dsn.replace("'", "''") + "' AS pg (TYPE postgres, READ_ONLY)")  # ATTACH takes no parameters
    con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM pg.public."{table}"')
    con.close()
    print(json.dumps({"seconds": time.perf_counter() - started}))
    """
)


def ensure_scanner() -> str | None:
    """DuckDB 1.5.5 and its postgres extension (from the duckdb-extension-postgres-scanner wheel) in
    their own virtualenv; None when ready, else the reason."""
    python = SCANNER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import duckdb, duckdb_extension_postgres_scanner"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return None
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(SCANNER_VENV)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *SCANNER_PACKAGES], check=True, capture_output=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"the DuckDB postgres extension could not be installed: {str(exc)[:120]}"
    return (
        None if subprocess.run(probe, capture_output=True).returncode == 0 else "the postgres extension wheel installed but does not import"
    )


DLT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import dlt
    from dlt.sources.sql_database import sql_table
    conn, destination, work = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    url = "postgresql://{username}@{host}:{port}/{database}".format(**conn)
    os.environ["DLT_DATA_DIR"] = os.path.join(work, "dlt-data")
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["DESTINATION__POSTGRES__CREDENTIALS__PASSWORD"] = os.environ.get("PGPASSWORD", "")
    started = time.perf_counter()
    table = sql_table(credentials=url, table=sys.argv[4], backend="connectorx", reflection_level="full_with_precision")
    if destination == "duckdb":
        dest = dlt.destinations.duckdb(os.path.join(work, "dlt.duckdb"))
    else:
        dest = dlt.destinations.postgres(url)
    pipeline = dlt.pipeline(pipeline_name="bench_" + destination, destination=dest, dataset_name="bench_dlt",
                            pipelines_dir=os.path.join(work, "dlt-pipelines"))
    pipeline.run(table, write_disposition="replace")
    print(json.dumps({"seconds": time.perf_counter() - started}))
    """
)


def duckdb_reader() -> str:
    """Which reader jupyter-di's PG->DuckDB cases use with this Python's DuckDB."""
    import duckdb

    from jupyter_di.connectors.duckdb import postgres_scan

    if postgres_scan.extension_file() is None:
        return f"ADBC -> Arrow -> DuckDB {duckdb.__version__} (no postgres extension for this DuckDB: the postgres-scanner extra)"
    return f"DuckDB {duckdb.__version__}'s postgres extension (connectors/duckdb/postgres_scan.py)"


def ensure_dlt() -> str | None:
    """Install dlt into its own virtualenv when missing; None when ready, else the reason."""
    python = DLT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import dlt, connectorx, sqlalchemy, pyarrow, psycopg"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return None
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DLT_PACKAGES], check=True, capture_output=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"dlt could not be installed: {str(exc)[:120]}"
    return None if subprocess.run(probe, capture_output=True).returncode == 0 else "dlt installed but does not import"


# -- the parent ---------------------------------------------------------------------------------


def run_child(argv: list[str], env: dict) -> tuple[dict | None, float, int, str]:
    """(what the child reported: its seconds and own peak RSS, wall seconds, peak RSS in KB of the
    child and its own children, its stderr).

    Reaped with ``os.wait4`` so the peak RSS is that child's (and its own children's), not the
    maximum over every case run so far, which ``RUSAGE_CHILDREN`` would give.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read().decode(errors="replace")
    report = _parse_report(stdout) if proc.returncode == 0 else None
    return report, wall, usage.ru_maxrss, stderr


def _parse_report(out: bytes) -> dict | None:
    for line in reversed(out.decode(errors="replace").splitlines()):
        try:
            report = json.loads(line)
            float(report["seconds"])
            return report
        except (ValueError, KeyError, TypeError):
            continue
    return None


def medians(results: list[tuple]) -> list[tuple]:
    """One row per case: the median seconds and wall time of its runs (each run listed in the note,
    since other work on a shared machine moves single runs a lot) and the largest RSS."""
    import statistics

    by_case: dict[str, list[tuple]] = {}
    for row in results:
        by_case.setdefault(row[0], []).append(row)
    merged = []
    for case, rows in by_case.items():
        done = [r for r in rows if r[2] is not None]
        if len(rows) == 1 or not done:
            merged.append(rows[0])
            continue
        seconds = statistics.median(r[2] for r in done)
        wall = statistics.median(r[3] for r in done)
        rss = max((r[4] for r in done), key=lambda text: float(text.split(" ")[0]) if text[0].isdigit() else 0.0)
        runs = "runs " + " / ".join(f"{r[2]:.2f}" for r in done) + " s"
        notes = "; ".join(dict.fromkeys(r[5] for r in rows if r[5]))
        merged.append((case, rows[0][1], seconds, wall, rss, "; ".join(n for n in (runs, notes) if n)))
    return merged


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def settle(conn: dict) -> None:
    """Start every case from the same server state: no pending checkpoint or vacuum work."""
    try:
        with psycopg_connect(conn) as c:
            c.execute("VACUUM")
            c.execute("CHECKPOINT")
    except Exception:  # not a superuser: the cases just share whatever background work there is
        pass


def count_rows(conn: dict, case: str, work: Path) -> int | None:
    duck_files = {
        "jdi-duckdb": (work / "jdi.duckdb", SOURCE_TABLE),
        "jdi-duckdb-parts": (work / "jdi.duckdb", SOURCE_TABLE),
        "jdi-duckdb-arrow": (work / "jdi.duckdb", SOURCE_TABLE),
        "jdi-nb-duckdb": (work / "nb.duckdb", SOURCE_TABLE),
        "jdi-nb-duckdb-parts": (work / "nb.duckdb", SOURCE_TABLE),
        "jdi-nb-duckdb-dask": (work / "nb.duckdb", SOURCE_TABLE),
        "duckdb-scanner": (work / "scanner.duckdb", SOURCE_TABLE),
        "dlt-duckdb": (work / "dlt.duckdb", f"bench_dlt.{SOURCE_TABLE}"),
    }
    if case.startswith("jdi-read"):
        return None
    try:
        if case in duck_files:
            import duckdb

            path, table = duck_files[case]
            with duckdb.connect(str(path), read_only=True) as d:
                return d.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        table = {
            "raw": "bench_raw",
            "jdi-pg": f"bench_out.{SOURCE_TABLE}",
            "jdi-pg-arrow": f"bench_out.{SOURCE_TABLE}",
            "jdi-pg-parts": f"bench_out.{SOURCE_TABLE}",
            "jdi-nb-pg": f"bench_nb.{SOURCE_TABLE}",
            "jdi-nb-pg-parts": f"bench_nb.{SOURCE_TABLE}",
            "jdi-nb-pg-dask": f"bench_nb.{SOURCE_TABLE}",
            "jdi-nb-pg-dask-one": f"bench_nb.{SOURCE_TABLE}",
            "dlt-pg": f"bench_dlt.{SOURCE_TABLE}",
        }[case]
        with psycopg_connect(conn) as c:
            return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except Exception:
        return None


RATIOS = [
    ("PG->PG against the COPY pipe (target >= 0.8)", "raw", "jdi-pg"),
    ("PG->PG through Arrow (no pass-through) against the COPY pipe", "raw", "jdi-pg-arrow"),
    ("PG->PG, partitions: auto, against the COPY pipe", "raw", "jdi-pg-parts"),
    ("PG->PG notebook run against the COPY pipe", "raw", "jdi-nb-pg"),
    ("PG->DuckDB against DuckDB's scanner (target >= 1.0)", "duckdb-scanner", "jdi-duckdb"),
    ("PG->DuckDB, partitions: auto, against DuckDB's scanner", "duckdb-scanner", "jdi-duckdb-parts"),
    ("PG->DuckDB through Arrow (postgres_scanner: false) against DuckDB's scanner", "duckdb-scanner", "jdi-duckdb-arrow"),
    ("Dask against local, PG->PG, one query (target: Dask within 1.3x)", "jdi-nb-pg", "jdi-nb-pg-dask-one"),
    ("Dask against local, PG->PG, partitions: auto", "jdi-nb-pg-parts", "jdi-nb-pg-dask"),
    ("Dask against local, PG->DuckDB, partitions: auto", "jdi-nb-duckdb-parts", "jdi-nb-duckdb-dask"),
]


def print_ratios(seconds: dict[str, float]) -> None:
    """The issue's targets as speed ratios (baseline seconds / ours: above 1 is faster), and Dask's
    cost as a time ratio (Dask seconds / local seconds)."""
    print()
    for label, base, ours in RATIOS:
        if base in seconds and ours in seconds:
            if label.startswith("Dask"):
                print(f"{label}: {seconds[ours] / seconds[base]:.2f}x the time")
            else:
                print(f"{label}: {seconds[base] / seconds[ours]:.2f}x the speed")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--host", default=None)
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--username", default="postgres")
    ap.add_argument("--database", default="jdi_bench")
    ap.add_argument("--skip-dlt", action="store_true", help="do not run (or install) dlt")
    ap.add_argument("--repeat", type=int, default=1, help="run the case list this many times, alternating, and report each case's median")
    ap.add_argument(
        "--cases",
        default="jdi-read,jdi-read-parts,raw,jdi-pg,jdi-pg-arrow,jdi-pg-parts,duckdb-scanner,jdi-duckdb,jdi-duckdb-parts,jdi-duckdb-arrow,jdi-nb-pg,jdi-nb-pg-dask-one,jdi-nb-pg-parts,"
        "jdi-nb-pg-dask,jdi-nb-duckdb,jdi-nb-duckdb-parts,jdi-nb-duckdb-dask,dlt-duckdb,dlt-pg",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--conn", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        seconds = CHILDREN[args.child](json.loads(args.conn), Path(args.work))
        print(json.dumps({"seconds": seconds, "self_rss_mb": _peak_rss_mb(_self_peak_rss_kb()), "workers_rss_mb": WORKER_RSS_MB}))
        return 0

    from benchmarks.bytecode import compile_package
    from tests.support import postgres as pg_support

    compile_package()
    started_server = None
    if args.port is None:
        started_server = pg_support.start()
        host, port = started_server["JDI_TEST_PG_HOST"], int(started_server["JDI_TEST_PG_PORT"])
    else:
        host, port = args.host or "127.0.0.1", args.port
    conn = {"host": host, "port": port, "username": args.username, "database": args.database}
    work = Path(tempfile.mkdtemp(prefix="jdi-bench-"))
    try:
        import psycopg

        with psycopg.connect(
            host=host, port=port, user=args.username, dbname="postgres", password=os.environ.get("PGPASSWORD") or None, autocommit=True
        ) as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (args.database,)).fetchone():
                c.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(args.database)))
        t0 = time.perf_counter()
        with psycopg_connect(conn) as c:
            for statement in GENERATE_SQL.strip().split(";\n"):
                if statement.strip():
                    c.execute(statement.replace("%(rows)s", str(int(args.rows))))
            size = c.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", (SOURCE_TABLE,)).fetchone()[0]
        print(f"generated {args.rows:,} rows ({size}) in {time.perf_counter() - t0:.1f} s on PostgreSQL {host}:{port}", flush=True)

        cases = [c for c in args.cases.split(",") if c]
        dlt_problem = "skipped (--skip-dlt)" if args.skip_dlt else None
        if any(c.startswith("dlt") for c in cases) and dlt_problem is None:
            dlt_problem = ensure_dlt()
        labels = {
            "raw": "psql COPY binary | psql COPY binary (PG->PG)",
            "jdi-read": "jupyter-di read only (rows discarded), one query",
            "jdi-read-parts": "jupyter-di read only (rows discarded), 2 parts",
            "jdi-pg": "jupyter-di Postgres->Postgres",
            "jdi-pg-arrow": "jupyter-di Postgres->Postgres through Arrow",
            "jdi-duckdb": "jupyter-di Postgres->DuckDB",
            "jdi-pg-parts": "jupyter-di Postgres->Postgres, partitions: auto",
            "jdi-duckdb-parts": "jupyter-di Postgres->DuckDB, partitions: auto",
            "jdi-duckdb-arrow": "jupyter-di Postgres->DuckDB through Arrow (postgres_scanner: false)",
            "duckdb-scanner": "DuckDB postgres scanner ATTACH + CREATE TABLE AS",
            "jdi-nb-pg-parts": "notebook run PG->PG, partitions: auto",
            "jdi-nb-duckdb-parts": "notebook run PG->DuckDB, partitions: auto",
            "jdi-nb-pg-dask": "notebook run PG->PG, auto, Dask 2 workers",
            "jdi-nb-pg-dask-one": "notebook run PG->PG, one query, Dask 2 workers",
            "jdi-nb-duckdb-dask": "notebook run PG->DuckDB, auto, Dask 2 workers",
            "jdi-nb-pg": "jupyter-di notebook run (source+destination blocks) PG->PG",
            "jdi-nb-duckdb": "jupyter-di notebook run (source+destination blocks) PG->DuckDB",
            "dlt-duckdb": "dlt sql_database (connectorx) -> DuckDB",
            "dlt-pg": "dlt sql_database (connectorx) -> Postgres",
        }
        scanner_problem = ensure_scanner() if "duckdb-scanner" in cases else None
        results = []
        for case in cases * max(1, args.repeat):
            if case == "duckdb-scanner":
                if scanner_problem:
                    results.append((case, labels[case], None, None, None, scanner_problem))
                    continue
                argv = [str(SCANNER_VENV / "bin" / "python"), "-c", SCANNER_SCRIPT, json.dumps(conn), str(work), SOURCE_TABLE]
            elif case.startswith("dlt"):
                if dlt_problem:
                    results.append((case, labels[case], None, None, None, dlt_problem))
                    continue
                if case == "dlt-pg":
                    with psycopg_connect(conn) as c:
                        c.execute("DROP SCHEMA IF EXISTS bench_dlt CASCADE")
                argv = [str(DLT_VENV / "bin" / "python"), "-c", DLT_SCRIPT, json.dumps(conn), case.split("-")[1], str(work), SOURCE_TABLE]
            elif case == "raw":
                argv = raw_pipe_argv(conn)
            else:
                argv = [sys.executable, __file__, "--child", case, "--conn", json.dumps(conn), "--work", str(work)]
            settle(conn)
            report, wall, rss_kb, err = run_child(argv, pg_env(conn))
            seconds = float(report["seconds"]) if report else None
            if case == "raw" and not err.strip():
                seconds = wall
            count = count_rows(conn, case, work)
            note = "" if count == args.rows or case.startswith("jdi-read") else f"destination has {count} rows"
            if seconds is None:
                note = "failed: " + (err.strip().splitlines() or ["?"])[-1][:100]
            own = (report or {}).get("self_rss_mb")
            workers = (report or {}).get("workers_rss_mb") or []
            rss = f"{own:.0f}" if own is not None else (f"{rss_kb / 1024:.0f}" if rss_kb else "?")
            if workers:
                rss += " + " + " + ".join(f"{w:.0f}" for w in workers)
            results.append((case, labels[case], seconds, wall, rss, note))
            print(f"  done: {labels[case]} (load average {load_average()})", flush=True)

        print()
        print(f"rows: {args.rows:,}   machine: {os.cpu_count()} cores   python {sys.version.split()[0]}   load average {load_average()}")
        print("peak RSS per process: the case's own process (a Dask case: client and scheduler) + each Dask worker")
        print(f"jupyter-di PG->DuckDB FULL_TABLE reads: {duckdb_reader()}")
        header = f"| {'case':<50} | {'seconds':>7} | {'rows/s':>9} | {'wall s':>6} | {'peak RSS MB':>15} | note"
        print(header)
        print("|" + "-" * 52 + "|" + "-" * 9 + "|" + "-" * 11 + "|" + "-" * 8 + "|" + "-" * 17 + "|------")
        results = medians(results)
        for _case, label, seconds, wall, rss, note in results:
            if seconds is None:
                print(f"| {label:<50} | {'n/a':>7} | {'n/a':>9} | {'n/a':>6} | {'n/a':>15} | {note}")
                continue
            print(f"| {label:<50} | {seconds:7.2f} | {args.rows / seconds:9,.0f} | {wall:6.1f} | {rss:>15} | {note}")
        print_ratios({case: seconds for case, _, seconds, *_ in results if seconds})
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started_server:
            pg_support.stop(started_server["JDI_TEST_PG_DATA"])


if __name__ == "__main__":
    sys.exit(main())
