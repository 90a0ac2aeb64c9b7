"""PostgreSQL -> Trino (Iceberg) benchmark: jupyter-di against Trino's own federated copy (issue 17).

    python benchmarks/trino.py                     # 1,000,000 rows; its own PostgreSQL and Trino
    python benchmarks/trino.py --rows 200000 --encode-rows 20000

A throwaway PostgreSQL (tests/support/postgres.py) gets an ``events`` table (bigint id, timestamptz,
text, integer, numeric(12,2), boolean, jsonb, a nullable text); a throwaway Trino
(tests/support/trino_server.py) has the Iceberg catalog and, added at run time, a ``postgresql``
catalog on the same database.  In one run, on the same servers:

1. Trino's own copy (the reference): ``INSERT INTO iceberg.bench.ref SELECT ... FROM
   postgresql.public.events`` through Trino's PostgreSQL connector.
2. jupyter-di FULL_TABLE: ``jupyter-di run`` of a notebook ``postgresql -> trino`` (wall time of the
   whole process, start-up included), then a rerun over the table (CREATE OR REPLACE), on each load
   path (``--paths``): ``files`` (Parquet files in the server's lake/staging folder, read through the
   test server's ``hive`` catalog: config ``staging_location``) and ``sql`` (INSERT statements into
   staging tables).
3. jupyter-di INCREMENTAL with a key: the first sync (staging + MERGE into the empty table), then 1% of
   the rows updated at the source and a second run (staging + MERGE of those rows); the reference is
   Trino's own MERGE of the same rows from the PostgreSQL catalog.
4. The value encoders on ``--encode-rows`` rows, one statement in flight each: jupyter-di's (one JSON
   array literal per column, ``connectors/trino/literals.py``) against the ``trino`` client's
   parameter binding (``EXECUTE IMMEDIATE ... USING``, a literal per value) in two shapes: multi-row
   ``INSERT ... VALUES (?, ...), ...`` and ``INSERT ... SELECT FROM UNNEST(?, ...)`` with a list per column.

Every case checks the rows at the destination.  Target: jupyter-di at least half the speed of
Trino's own copy.
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

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's folder comes first on sys.path, where this trino.py would hide the client
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

# the SQL path sends ~250 MB of statement text per 1M rows; a 2 GB coordinator heap ran out during it
# once under heavy machine load (the JVM exits on OutOfMemoryError), so the benchmark's server gets 3 GB
os.environ.setdefault("JDI_TRINO_HEAP", "3G")

from tests.support import postgres, trino_server  # noqa: E402

COLUMNS = "id, updated_at, name, quantity, price, active, attrs, note"
TYPES = (
    "id bigint, updated_at timestamp(6) with time zone, name varchar, quantity integer, price decimal(12,2), "
    "active boolean, attrs varchar, note varchar"
)


def generate(port: int, rows: int) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS events")
        c.execute(
            "CREATE TABLE events AS SELECT g::bigint AS id, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS updated_at, "
            "'customer-' || g || '-' || md5(g::text) AS name, (g %% 1000)::integer AS quantity, ((g %% 100000) / 100.0)::numeric(12,2) AS price, "
            "(g %% 2 = 0) AS active, jsonb_build_object('k', g, 'tag', 't' || (g %% 10), 'ok', g %% 3 = 0) AS attrs, "
            "CASE WHEN g %% 5 = 0 THEN NULL ELSE 'note ' || g END AS note FROM generate_series(1, %s) AS g",
            (rows,),
        )
        c.execute("ALTER TABLE events ADD PRIMARY KEY (id)")
        c.execute("CREATE INDEX ON events (updated_at, id)")
        c.execute("VACUUM ANALYZE events")


def update_share(port: int, share: float) -> int:
    import psycopg

    every = round(1 / share)
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as c:
        cur = c.execute("UPDATE events SET name = name || '-v2', updated_at = now() WHERE id %% %s = 0", (every,))
        return cur.rowcount


class Trino:
    def __init__(self, port: int) -> None:
        import trino

        self.conn = trino.dbapi.connect(host="127.0.0.1", port=port, user="bench", catalog="iceberg")

    def __call__(self, sql: str, params: list | None = None) -> list:
        cur = self.conn.cursor()
        cur.execute(sql, params) if params is not None else cur.execute(sql)
        return cur.fetchall()

    def timed(self, sql: str, params: list | None = None) -> float:
        started = time.perf_counter()
        self(sql, params)
        return time.perf_counter() - started


def notebook(path: Path, pg_port: int, trino_port: int, method: str, table: str, staging: dict[str, str] | None = None) -> Path:
    src = f"  host: 127.0.0.1\n  port: {pg_port}\n  username: postgres\n  database: postgres\n"
    keys = (
        "    bookmark_properties: [updated_at]\n    key_properties: [id]\n    unique_constraints: [id]\n" if method == "INCREMENTAL" else ""
    )
    dest = f"  host: 127.0.0.1\n  port: {trino_port}\n  user: bench\n  catalog: iceberg\n  schema: bench\n"
    dest += "".join(f"  {k}: {v}\n" for k, v in (staging or {}).items())
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(c)
        for c in (
            "%load_ext jupyter_di",
            f"%%di_source src\nsource: postgresql\nconfig:\n{src}streams:\n  events:\n    replication_method: {method}\n{keys}"
            f"    destination_table: {table}\n",
            f"%%di_destination dest --upstream src\ndestination: trino\nconfig:\n{dest}",
        )
    ]
    nbformat.write(nb, path)
    return path


def timed_run(path: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jupyter_di.cli", "run", "-q", str(path)], capture_output=True, text=True, cwd=path.parent)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return elapsed


def encoders(trino_port: int, pg_port: int, rows: int, q: Trino) -> list[tuple[str, float, int]]:
    """Each encoder loading the same ``rows`` rows with one statement in flight."""
    from jupyter_di.connectors.base import ReadRequest, StreamSettings
    from jupyter_di.connectors.postgres import PostgresSource
    from jupyter_di.connectors.trino.connection import TrinoConfig
    from jupyter_di.connectors.trino.load import InsertPlan

    source = PostgresSource({"host": "127.0.0.1", "port": pg_port, "username": "postgres", "database": "postgres"})
    reader = source.read(ReadRequest(StreamSettings(stream="events"), limit=rows))
    import pyarrow as pa

    table = pa.Table.from_batches(list(reader)).combine_chunks()
    source.close()
    batch = table.to_batches()[0]
    results = []

    def fresh(name: str) -> str:
        q(f"DROP TABLE IF EXISTS iceberg.bench.{name}")
        q(f"CREATE TABLE iceberg.bench.{name} ({TYPES})")
        return f"iceberg.bench.{name}"

    # jupyter-di: one JSON-array literal per column
    target = fresh("enc_jdi")
    cfg = TrinoConfig({"host": "127.0.0.1", "port": trino_port, "user": "bench", "catalog": "iceberg"})
    types = [t.split(" ", 1)[1] for t in TYPES.split(", ")]
    plan = InsertPlan(batch.schema.names, types, [f.type for f in batch.schema], len(target))
    session = cfg.connect()
    started = time.perf_counter()
    count = 0
    for statement, _rows in plan.statements(batch, cfg.statement_bytes, "events"):
        session.run(f"INSERT INTO {target}{statement}")
        count += 1
    results.append(("jupyter-di encoder (JSON array per column)", time.perf_counter() - started, count))
    session.close()
    assert q(f"SELECT count(*) FROM {target}") == [[rows]]

    # the client's binding: the same rows per statement as a list per column, UNNEST(?, ...)
    per_statement = max(1, rows // count)
    pylists = [c.to_pylist() for c in batch.columns]
    names = batch.schema.names
    names_sql = ", ".join(names)
    casts = ", ".join(f"CAST(c{i} AS {t})" for i, t in enumerate(types))
    unnest = f"INSERT INTO {{}} ({names_sql}) SELECT {casts} FROM UNNEST({', '.join('?' for _ in names)}) AS u({', '.join(f'c{i}' for i in range(len(names)))})"
    target = fresh("enc_bind_unnest")
    started = time.perf_counter()
    for start in range(0, rows, per_statement):
        q(unnest.format(target), [col[start : start + per_statement] for col in pylists])
    results.append(("trino client binding, UNNEST(?) lists", time.perf_counter() - started, -(-rows // per_statement)))
    assert q(f"SELECT count(*) FROM {target}") == [[rows]]

    # the client's binding: multi-row VALUES (statements of 1,000 rows: Trino plans every row)
    target = fresh("enc_bind_values")
    values_rows = 1000
    row = "(" + ", ".join(f"CAST(? AS {t})" for t in types) + ")"
    started = time.perf_counter()
    done = 0
    limit = min(rows, 5_000)  # ~100-1,000 rows/s: a sample is enough
    for start in range(0, limit, values_rows):
        n = min(values_rows, limit - start)
        params = [col[i] for i in range(start, start + n) for col in pylists]
        q(f"INSERT INTO {target} ({names_sql}) VALUES " + ", ".join([row] * n), params)
        done += n
    elapsed = (time.perf_counter() - started) * rows / done
    results.append((f"trino client binding, VALUES (measured on {done:,} rows)", elapsed, -(-done // values_rows)))
    return results


class Results(list):
    """The table's rows; each is also printed to stderr as it is measured (a run that fails later keeps them)."""

    def append(self, row: tuple[str, str, float, int, str]) -> None:
        name, path, seconds, rows, vs = row
        print(f"  {name} [{path}]: {seconds:.1f} s, {rows / seconds:,.0f} rows/s {vs}", file=sys.stderr)
        super().append(row)


PATHS = {
    "files": "Parquet files + external table (staging_location)",
    "sql": "SQL statements (INSERT ... SELECT FROM UNNEST)",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--encode-rows", type=int, default=50_000)
    parser.add_argument("--paths", default="files,sql", help="load paths to run: files, sql or both")
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    pg = postgres.start()
    pg_port = int(pg["JDI_TEST_PG_PORT"])
    trino_base = tempfile.mkdtemp(prefix=trino_server.TEMP_PREFIX)
    tr = trino_server.start(trino_base)
    trino_port = int(tr["JDI_TEST_TRINO_PORT"])
    staging = {
        "staging_location": tr["JDI_TEST_TRINO_STAGING_LOCATION"],
        "staging_server_location": tr["JDI_TEST_TRINO_STAGING_SERVER_LOCATION"],
        "staging_catalog": tr["JDI_TEST_TRINO_STAGING_CATALOG"],
    }
    print(f"Trino started in {tr['JDI_TEST_TRINO_START_SECONDS']}s; generating {args.rows:,} rows ...", file=sys.stderr)
    results = Results()
    enc: list[tuple[str, float, int]] = []
    try:
        generate(pg_port, args.rows)
        q = Trino(trino_port)
        url = f"jdbc:postgresql://127.0.0.1:{pg_port}/postgres"  # catalog properties are literals (no parameters)
        q(f"CREATE CATALOG postgresql USING postgresql WITH (\"connection-url\" = '{url}', \"connection-user\" = 'postgres')")
        q("CREATE SCHEMA IF NOT EXISTS iceberg.bench")
        select = COLUMNS.replace("attrs", "json_format(attrs)")

        print("Trino's own copy ...", file=sys.stderr)
        q(f"CREATE TABLE iceberg.bench.ref ({TYPES})")
        # warm-up (the catalog's first query, the JIT): a small copy into a scratch table
        q(
            f"CREATE TABLE iceberg.bench.warm AS SELECT {select.replace('json_format(attrs)', 'json_format(attrs) AS attrs')} FROM postgresql.public.events LIMIT 1000"
        )
        ref = q.timed(f"INSERT INTO iceberg.bench.ref ({COLUMNS}) SELECT {select} FROM postgresql.public.events")
        assert q("SELECT count(*) FROM iceberg.bench.ref") == [[args.rows]]
        results.append(("Trino INSERT ... SELECT FROM postgresql", "reference", ref, args.rows, ""))

        def versus(seconds: float, reference: float) -> str:
            return f"{reference / seconds:.2f}x"

        with tempfile.TemporaryDirectory() as tmp:
            inc_paths = {}
            for path in paths:
                extra = staging if path == "files" else None
                print(f"jupyter-di FULL_TABLE, {path} ...", file=sys.stderr)
                full_nb = notebook(Path(tmp) / f"full_{path}.ipynb", pg_port, trino_port, "FULL_TABLE", f"events_full_{path}", extra)
                full = timed_run(full_nb)
                assert q(f"SELECT count(*), count(DISTINCT id) FROM iceberg.bench.events_full_{path}") == [[args.rows, args.rows]]
                results.append(("jupyter-di FULL_TABLE, new table (CREATE TABLE AS)", path, full, args.rows, versus(full, ref)))
                full2 = timed_run(full_nb)  # the rerun replaces the table
                assert q(f"SELECT count(*) FROM iceberg.bench.events_full_{path}") == [[args.rows]]
                results.append(("jupyter-di FULL_TABLE rerun (CREATE OR REPLACE)", path, full2, args.rows, versus(full2, ref)))
                print(f"jupyter-di INCREMENTAL, {path} ...", file=sys.stderr)
                inc_paths[path] = notebook(Path(tmp) / f"inc_{path}.ipynb", pg_port, trino_port, "INCREMENTAL", f"events_inc_{path}", extra)
                first = timed_run(inc_paths[path])
                assert q(f"SELECT count(*) FROM iceberg.bench.events_inc_{path}") == [[args.rows]]
                results.append(("jupyter-di INCREMENTAL first sync (MERGE)", path, first, args.rows, versus(first, ref)))
                assert not list(Path(staging["staging_location"]).iterdir()), "staging files left behind"

            since = q("SELECT max(updated_at) FROM iceberg.bench.ref")[0][0]
            changed = update_share(pg_port, args.changed)
            updates = ", ".join(f"{c} = s.{c}" for c in COLUMNS.split(", ") if c != "id")
            ref_merge = q.timed(
                f"MERGE INTO iceberg.bench.ref t USING (SELECT {select.replace('json_format(attrs)', 'json_format(attrs) AS attrs')} "
                "FROM postgresql.public.events WHERE updated_at > ?) s ON t.id = s.id "
                f"WHEN MATCHED THEN UPDATE SET {updates} WHEN NOT MATCHED THEN INSERT ({COLUMNS}) VALUES ({', '.join('s.' + c for c in COLUMNS.split(', '))})",
                [since],
            )
            assert q("SELECT count(*) FROM iceberg.bench.ref WHERE name LIKE '%-v2'") == [[changed]]
            results.append((f"Trino MERGE of the {changed:,} changed rows from postgresql", "reference", ref_merge, changed, ""))
            for path in paths:
                merge = timed_run(inc_paths[path])
                assert q(f"SELECT count(*) FROM iceberg.bench.events_inc_{path} WHERE name LIKE '%-v2'") == [[changed]]
                assert q(f"SELECT count(*) FROM iceberg.bench.events_inc_{path}") == [[args.rows]]
                results.append(
                    (f"jupyter-di INCREMENTAL, {args.changed:.0%} changed (MERGE)", path, merge, changed, versus(merge, ref_merge))
                )

        if args.encode_rows and "sql" in paths:
            print("encoders ...", file=sys.stderr)
            enc = encoders(trino_port, pg_port, min(args.encode_rows, args.rows), q)
    except BaseException:
        log = Path(trino_base) / "server.log"
        if log.exists():
            print("Trino server log, last lines:\n" + log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        trino_server.stop(trino_base)
        postgres.stop(pg["JDI_TEST_PG_DATA"])

    print(
        f"\nPostgreSQL -> Trino {trino_server.VERSION} (Iceberg, file metastore, {trino_server.HEAP} heap), {args.rows:,} rows, {os.cpu_count()} cores"
    )
    print("load paths: " + "; ".join(f"{k} = {v}" for k, v in PATHS.items() if k in paths) + "\n")
    print(f"{'case':<58} {'path':<10} {'seconds':>8} {'rows':>10} {'rows/s':>9}  vs reference")
    for name, path, seconds, rows, vs in results:
        print(f"{name:<58} {path:<10} {seconds:>8.1f} {rows:>10,} {rows / seconds:>9,.0f}  {vs}")
    if enc:
        print(
            f"\nvalue encoders (sql path), {min(args.encode_rows, args.rows):,} rows, one statement in flight, default max_statement_bytes:"
        )
        print(f"{'encoder':<66} {'seconds':>8} {'stmts':>10} {'rows/s':>9}")
        for name, seconds, statements in enc:
            print(f"{name:<66} {seconds:>8.1f} {statements:>10,} {min(args.encode_rows, args.rows) / seconds:>9,.0f}")
    print("\njupyter-di rows are wall time of whole `jupyter-di run` processes (start-up included); target: >= 0.5x the reference's speed")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
