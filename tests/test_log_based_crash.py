"""kill -9 at many points of LOG_BASED runs (``jupyter-di run`` processes); after each, a normal run
resumes and the destination equals the source exactly: no change lost, none applied twice."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support.notebooks import duckdb_query, pg_yaml, write_notebook

ROOT = Path(__file__).resolve().parent.parent
KILL = str(ROOT / "tests" / "support" / "kill_calls.py")
SMALL = [
    "--set",
    "jupyter_di.connectors.postgres.log_read:CHUNK_CHANGES=40",  # many batches, each with its position
    "--set",
    "jupyter_di.connectors.postgres.log_read:READ_BATCH_BYTES=1500",
    "--set",
    "jupyter_di.connectors._shared.sql_file_destination:SqlFileDestination.commit_every_rows=50",
    "--set",
    "jupyter_di.connectors.postgres.write:COPY_BYTES=2000",  # a PostgreSQL commit every few batches
]

KILL_POINTS = [
    # (function, nth call, destination): where the process dies
    ("jupyter_di.connectors.postgres.replication:ExportedSnapshot.close", 1, "duckdb"),  # snapshot read, slot made, nothing committed
    ("jupyter_di.connectors.postgres.log_read:_snapshot", 1, "postgresql"),  # before the slot exists
    ("jupyter_di.connectors.duckdb.connection:_publish", 1, "duckdb"),  # a new DuckDB file initialised, not yet in place
    ("jupyter_di.connectors.postgres.replication:advance", 1, "duckdb"),  # confirming the saved position
    ("jupyter_di.connectors.postgres.log_read:_Changes._typed", 2, "postgresql"),  # mid-read of the changes
    ("jupyter_di.connectors.postgres.log_read:_Changes._flush", 3, "duckdb"),
    ("jupyter_di.connectors._shared.sql_file_destination:SqlFileDestination._apply_changes", 1, "duckdb"),  # first window
    ("jupyter_di.connectors._shared.sql_file_destination:SqlFileDestination._apply_changes", 3, "sqlite"),  # after two commits
    ("jupyter_di.connectors.postgres.write:_TableWriter._upsert_rows", 3, "postgresql"),
    ("jupyter_di.state.store:StateStore.commit_consumer", 1, "duckdb"),  # destination committed, local state not saved
    ("jupyter_di.state.store:StateStore.commit_consumer", 3, "postgresql"),
    ("jupyter_di.state.store:StateStore.commit_consumer", 2, "sqlite"),
    ("jupyter_di.connectors._shared.sql_file_destination:SqlFileDestination._commit", 2, "sqlite"),  # inside a commit
    ("jupyter_di.connectors.postgres.write:_TableWriter._commit", 2, "postgresql"),
    ("jupyter_di.sync.spill:_state", 3, "duckdb"),  # source: a batch spilled, its state not yet published
]


def conninfo(pg) -> str:
    return f"host={pg['host']} port={pg['port']} dbname={pg['database']} user={pg['username']}"


def run(nb: Path, *kill: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, KILL, *SMALL, *kill, "--", "run", "-q", str(nb)], capture_output=True, text=True, cwd=nb.parent, timeout=300
    )


def workload(conn, rnd: random.Random, next_id: list[int]) -> None:
    """A few transactions of inserts, updates (some of one row many times), deletes and a key change."""
    ids = [r[0] for r in conn.execute("SELECT id FROM items").fetchall()]
    with conn.transaction():
        for _ in range(60):
            next_id[0] += 1
            conn.execute("INSERT INTO items VALUES (%s, %s, %s)", (next_id[0], f"new{next_id[0]}", rnd.randint(0, 100)))
    with conn.transaction():
        for i in rnd.sample(ids, min(80, len(ids))):
            conn.execute("UPDATE items SET v = v || '+', n = n + 1 WHERE id = %s", (i,))
        hot = rnd.choice(ids)
        for _ in range(30):
            conn.execute("UPDATE items SET n = n + 1 WHERE id = %s", (hot,))
    with conn.transaction():
        for i in rnd.sample([x for x in ids if x != hot], min(25, len(ids) - 1)):
            conn.execute("DELETE FROM items WHERE id = %s", (i,))
    next_id[0] += 1
    conn.execute("UPDATE items SET id = %s WHERE id = (SELECT max(id) FROM items WHERE id < 1000)", (next_id[0] + 5000,))


@pytest.fixture
def log_pg(pg_config):
    yield pg_config
    with psycopg.connect(conninfo(pg_config), autocommit=True) as conn:
        for (name,) in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE database = current_database()").fetchall():
            conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))


@pytest.mark.parametrize("point", range(len(KILL_POINTS)), ids=[f"{f.rsplit(':', 1)[1]}#{n}-{d}" for f, n, d in KILL_POINTS])
def test_kill_9_then_resume_is_exact(log_pg, tmp_path, point):
    function, nth, destination = KILL_POINTS[point]
    rnd = random.Random(point)
    with psycopg.connect(conninfo(log_pg), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text, n int)")
        conn.execute("INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 300) g")
        if destination == "postgresql":
            conn.execute("CREATE SCHEMA dst")
    dst_config = pg_yaml(log_pg) + "  schema: dst\n" if destination == "postgresql" else f"  path: {tmp_path / ('out.' + destination)}\n"
    nb = write_notebook(
        tmp_path / "cdc.ipynb",
        [
            "%load_ext jupyter_di",
            f"%%di_source src\nsource: postgresql\nconfig:\n{pg_yaml(log_pg)}streams:\n  items:\n    replication_method: LOG_BASED\n    delete_mode: hard\n",
            f"%%di_destination dst --upstream src\ndestination: {destination}\nconfig:\n{dst_config}",
        ],
    )

    def destination_rows() -> list[tuple]:
        if destination == "duckdb":
            return duckdb_query(tmp_path / "out.duckdb", "SELECT id, v, n FROM items ORDER BY id")
        if destination == "sqlite":
            import sqlite3

            with sqlite3.connect(tmp_path / "out.sqlite") as con:
                return con.execute("SELECT id, v, n FROM items ORDER BY id").fetchall()
        with psycopg.connect(conninfo(log_pg)) as conn:
            return [tuple(r) for r in conn.execute("SELECT id, v, n FROM dst.items ORDER BY id").fetchall()]

    next_id = [1000]
    killed = 0
    with psycopg.connect(conninfo(log_pg), autocommit=True) as conn:
        for round_ in range(3):
            if round_:
                workload(conn, rnd, next_id)
            crashed = run(nb, "--kill", f"{function}:{nth}")
            killed += crashed.returncode == -9
            assert crashed.returncode in (0, -9), crashed.stderr
            if round_ == 1:
                workload(conn, rnd, next_id)  # changes made while the crashed run's position was not yet saved
            resumed = run(nb)
            assert resumed.returncode == 0, resumed.stderr
            expected = [tuple(r) for r in conn.execute("SELECT id, v, n FROM items ORDER BY id").fetchall()]
            assert destination_rows() == expected, f"round {round_}"
    assert killed, "the kill point was never reached"
