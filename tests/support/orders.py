"""An ``orders`` table at the source and its copies at the destinations, compared row for row.

Rows are compared as ``id -> (note, epoch seconds of updated_at rounded to the µs)``,
with the total row count beside them to catch duplicates.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from pathlib import Path

import duckdb
import psycopg

Rows = dict[int, tuple[str, float]]


def create_orders(conn: psycopg.Connection, rows: int, *, step: str = "1 second", note: str | None = "first") -> psycopg.Connection:
    """``orders(id, updated_at, note)``: ``rows`` rows ``step`` apart from 2024-01-01 (row ``g`` at
    ``g * step``), each with the note ``note`` (``None``: ``n<id>``). Returns ``conn``."""
    conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, note text)")
    conn.execute(
        "INSERT INTO orders SELECT g, '2024-01-01'::timestamptz + g * %s::interval, coalesce(%s, 'n' || g) FROM generate_series(1, %s) g",
        (step, note, rows),
    )
    return conn


def mutate(
    conn: psycopg.Connection, round_no: int, rng: random.Random, *, new: int = 400, updated: int = 300, id_range: int = 20_000
) -> None:
    """New rows and updated rows; each statement gives all its rows one timestamp (ties)."""
    conn.execute(
        "INSERT INTO orders (id, updated_at, note) SELECT g, clock_timestamp(), 'new' || %s "
        "FROM generate_series((SELECT coalesce(max(id), 0) + 1 FROM orders), (SELECT coalesce(max(id), 0) + %s FROM orders)) g",
        (round_no, new),
    )
    ids = rng.sample(range(1, id_range), updated)
    conn.execute("UPDATE orders SET note = %s, updated_at = now() WHERE id = ANY(%s)", (f"v{round_no}", ids))


def source_rows(conn: psycopg.Connection) -> Rows:
    rows = conn.execute("SELECT id, note, extract(epoch FROM updated_at)::float8 FROM orders").fetchall()
    return {r[0]: (r[1], round(r[2], 6)) for r in rows}


def source_max_epoch(conn: psycopg.Connection) -> float:
    return round(conn.execute("SELECT extract(epoch FROM max(updated_at))::float8 FROM orders").fetchone()[0], 6)


def iso_epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _as_rows(rows) -> tuple[Rows, int]:
    rows = list(rows)
    return {int(i): (n, round(iso_epoch(u), 6)) for i, n, u in rows}, len(rows)


def duckdb_rows(path: Path, table: str = "orders") -> tuple[Rows, int]:
    if not path.exists():
        return {}, 0
    with duckdb.connect(str(path), read_only=True) as con:
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0]:
            return {}, 0
        return _as_rows(con.execute(f'SELECT id, note, epoch_us(updated_at) / 1e6 FROM "{table}"').fetchall())


def sqlite_rows(path: Path, table: str = "orders") -> tuple[Rows, int]:
    if not path.exists():
        return {}, 0
    with sqlite3.connect(path) as con:
        if not con.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]:
            return {}, 0
        return _as_rows(con.execute(f'SELECT id, note, updated_at FROM "{table}"').fetchall())


def postgres_rows(conn: psycopg.Connection, schema: str, table: str = "orders") -> tuple[Rows, int]:
    if not conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()[0]:
        return {}, 0
    return _as_rows(conn.execute(f'SELECT id, note, extract(epoch FROM updated_at)::float8 FROM "{schema}"."{table}"').fetchall())


def file_rows(path: Path) -> tuple[Rows, int]:
    """The rows of a files destination's ``.jsonl``, ``.csv`` or ``.parquet`` file (read with plain
    json / pyarrow, not with jupyter-di's own reader)."""
    if not path.exists():
        return {}, 0
    if path.suffix == ".jsonl":
        records = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
        return _as_rows((r["id"], r["note"], r["updated_at"]) for r in records)
    import pyarrow as pa

    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        types = {"id": pa.int64(), "note": pa.string(), "updated_at": pa.timestamp("us", "UTC")}
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    data = table.select(["id", "note", "updated_at"]).to_pydict()
    return _as_rows(zip(data["id"], data["note"], data["updated_at"]))


def differences(source: Rows, dest: Rows, count: int) -> str:
    """'' when ``dest`` equals ``source`` row for row with no duplicate; else what differs."""
    problems = []
    if count != len(dest):
        problems.append(f"{count - len(dest)} duplicate rows")
    missing = sorted(set(source) - set(dest))
    extra = sorted(set(dest) - set(source))
    stale = sorted(i for i in source if i in dest and dest[i] != source[i])
    for what, ids in (("missing", missing), ("extra", extra), ("stale", stale)):
        if ids:
            problems.append(f"{len(ids)} {what} (e.g. ids {ids[:5]})")
    return "; ".join(problems)
