"""A run killed between a destination's commit (rows and its own copy of the state) and the local
state file: the next run must not append the committed rows of a keyless stream again.

Real ``jupyter-di run`` processes (tests/support/kill_calls.py kills the process as it calls
``StateStore.commit_consumer``, i.e. after the destination committed), a real PostgreSQL source
and PostgreSQL, DuckDB and SQLite destinations.  An INCREMENTAL stream without a key
(``append_only: true``) re-appends the rows tied with its bookmark on every run, by design; the
tests allow exactly that and nothing more.  The same holds for a destination already past the
bookmark a run reads from because another destination of the source lags, for two destination
blocks writing the stream into one database (each has its own state row there), for the first commit
after a reset (its state carries the reset's epoch) and for a destination whose state row an older
version wrote (one row per source stream).  LOG_BASED streams are
covered by the kill points on ``commit_consumer`` in tests/test_log_based_crash.py (re-applying
changes is exact)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from jupyter_di.connectors.duckdb.write import DuckDBDestination
from jupyter_di.connectors.postgres import PostgresDestination
from jupyter_di.connectors.sqlite.write import SQLiteDestination
from jupyter_di.state.store import StateStore, destination_state_key, state_key
from tests.support.notebooks import cli_process, pg_yaml, write_notebook

ROOT = Path(__file__).resolve().parents[2]
KILL = str(ROOT / "tests" / "support" / "kill_calls.py")
SMALL = [
    "--set",
    "jupyter_di.connectors._shared.sql_file_destination:SqlFileDestination.commit_every_rows=40",
    "--set",
    "jupyter_di.connectors.duckdb.write:DuckDBDestination.commit_every_rows=40",
    "--set",
    "jupyter_di.connectors.postgres.write:COPY_BYTES=1500",
]
AT_LOCAL_SAVE = "jupyter_di.state.store:StateStore.commit_consumer"
BASE = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
SHARED_KEY = state_key("events", "src", "events")
"""The one state row per source stream that destinations written before each block had its own hold."""


def conninfo(pg: dict[str, Any]) -> str:
    return f"host={pg['host']} port={pg['port']} dbname={pg['database']} user={pg['username']}"


def add_rows(pg: dict[str, Any], first: int, last: int) -> None:
    with psycopg.connect(conninfo(pg), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events SELECT g, %s::timestamptz + g * interval '1 second', 'e' || g FROM generate_series(%s::int, %s::int) g",
            (BASE, first, last),
        )


class Case:
    def __init__(self, kind: str, pg: dict[str, Any], tmp: Path, *more: str, copy: bool = False) -> None:
        """``more``: other cells (another destination of ``src``); ``copy``: a second destination
        block ``copy`` writing the stream into the same database (table ``events_copy``)."""
        self.kind, self.pg, self.tmp = kind, pg, tmp
        if kind == "postgresql":
            with psycopg.connect(conninfo(pg), autocommit=True) as conn:
                conn.execute("CREATE SCHEMA dst")
            self.config: dict[str, Any] = dict(pg, schema="dst")
            yaml = pg_yaml(pg) + "  schema: dst\n"
        else:
            self.config = {"path": str(tmp / f"out.{kind}")}
            yaml = f"  path: {self.config['path']}\n"
        if copy:
            more += (
                f"%%di_destination copy --upstream src\ndestination: {kind}\nconfig:\n{yaml}"
                "streams:\n  events:\n    destination_table: events_copy\n",
            )
        self.notebook = write_notebook(
            tmp / "events.ipynb",
            [
                "%load_ext jupyter_di\n%config JupyterDI.batch_size = 40",
                f"%%di_source src\nsource: postgresql\nconfig:\n{pg_yaml(pg)}streams:\n  events:\n"
                "    replication_method: INCREMENTAL\n    bookmark_properties: [at]\n    append_only: true\n",
                f"%%di_destination dst --upstream src\ndestination: {kind}\nconfig:\n{yaml}",
                *more,
            ],
        )
        self.store = StateStore(tmp / ".jupyter_di" / "state.sqlite")

    def run(self, *kill: str) -> subprocess.CompletedProcess:
        args = [sys.executable, KILL, *SMALL, *kill, "--", "run", "-q", str(self.notebook)]
        return subprocess.run(args, capture_output=True, text=True, cwd=self.tmp, timeout=300)

    def reset(self) -> None:
        assert cli_process("state", "reset", str(self.notebook), "src", "events", cwd=self.tmp).returncode == 0

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        """``statement`` on the destination database (``%s`` placeholders), committed."""
        if self.kind == "postgresql":
            with psycopg.connect(conninfo(self.pg)) as conn:
                cur = conn.execute(statement.replace("{schema}", "dst."), params)
                return cur.fetchall() if cur.description else []
        statement = statement.replace("{schema}", "").replace("%s", "?")
        if self.kind == "duckdb":
            with duckdb.connect(self.config["path"]) as con:
                return con.execute(statement, list(params)).fetchall()
        with sqlite3.connect(self.config["path"]) as con:
            return con.execute(statement, params).fetchall()

    def rows(self, table: str = "events") -> list[int]:
        return [r[0] for r in self.sql(f"SELECT seq FROM {{schema}}{table} ORDER BY seq")]

    def state(self, block: str = "dst") -> dict[str, Any] | None:
        """The state the destination committed for ``block``."""
        cls = {"postgresql": PostgresDestination, "duckdb": DuckDBDestination, "sqlite": SQLiteDestination}[self.kind]
        with cls(self.config) as destination:
            return destination.load_state(destination_state_key("events", "src", "events", block))

    def committed(self, block: str = "dst") -> int | None:
        """The seq of the row the destination's own state says ``block`` committed up to."""
        return seq_of((self.state(block) or {}).get("bookmark"))

    def recorded(self, block: str = "dst") -> int | None:
        """The seq of the row the local state file says ``block`` committed up to."""
        return seq_of(((self.store.get("events", "src", "events") or {}).get("consumers") or {}).get(block))


def seq_of(bookmark: dict[str, Any] | None) -> int | None:
    if not bookmark:
        return None
    return round((dt.datetime.fromisoformat(bookmark["at"]) - BASE).total_seconds())


def assert_each_row_once_but(rows: list[int], last: int, ties: set[int]) -> None:
    """Rows 1..last, each once, except the rows tied with a bookmark a run read from (twice)."""
    counts = Counter(rows)
    assert sorted(counts) == list(range(1, last + 1))
    twice = {seq for seq, n in counts.items() if n > 1}
    assert twice <= ties, f"appended again: {sorted(twice - ties)[:10]}... ({len(twice - ties)} rows)"
    assert max(counts.values()) <= 2


@pytest.fixture
def events(pg_config):
    with psycopg.connect(conninfo(pg_config), autocommit=True) as conn:
        conn.execute("CREATE TABLE events (seq int, at timestamptz, note text)")  # no key
    add_rows(pg_config, 1, 200)
    return pg_config


@pytest.mark.parametrize("kind", ["postgresql", "duckdb", "sqlite"])
def test_a_keyless_stream_killed_after_the_destination_committed_appends_nothing_twice(events, tmp_path, kind):
    case = Case(kind, events, tmp_path)
    ties: set[int] = set()
    # 1. the first sync dies after its first commit: the destination has a window, the file nothing
    killed = case.run("--kill", f"{AT_LOCAL_SAVE}:1")
    assert killed.returncode == -9, killed.stderr
    first = case.committed()
    assert first is not None and case.recorded() is None
    assert 0 < len(case.rows()) < 200
    add_rows(events, 201, 230)
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    ties.add(first)  # the resumed run reads from the destination's bookmark: its row is tied
    assert_each_row_once_but(case.rows(), 230, ties)
    assert case.recorded() == case.committed() == 230
    # 2. an incremental run dies at its second commit: the file is one window behind the destination
    add_rows(events, 231, 400)
    killed = case.run("--kill", f"{AT_LOCAL_SAVE}:2")
    assert killed.returncode == -9, killed.stderr
    behind, ahead = case.recorded(), case.committed()
    assert behind is not None and ahead is not None and behind < ahead < 400, (behind, ahead)
    ties.add(230)  # the killed run read from 230
    add_rows(events, 401, 420)
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    ties.add(ahead)
    assert_each_row_once_but(case.rows(), 420, ties)
    assert case.recorded() == case.committed() == 420
    # 3. a reset still means "read everything again": the destination's old state does not undo it
    case.reset()
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    counts = Counter(case.rows())
    assert all(counts[seq] >= 2 for seq in range(1, 421)), "the reset's full read was skipped"
    assert case.recorded() == case.committed() == 420


def test_a_destination_past_the_streams_bookmark_appends_only_what_it_lacks(events, tmp_path):
    """One source, two destinations of a keyless stream; one fails a run, so the next run reads from
    its (older) bookmark: the other one, already past it, must not append those rows again."""
    lite = tmp_path / "other.sqlite"
    other = f"%%di_destination other --upstream src\ndestination: sqlite\nconfig:\n  path: {lite}\n"
    other += "streams:\n  events:\n    columns: [seq, note]\n"  # without the bookmark column: rows are still told apart
    lagging = Case("postgresql", events, tmp_path, other)

    def other_rows() -> list[int]:
        with sqlite3.connect(lite) as con:
            return [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq").fetchall()]

    assert lagging.run().returncode == 0
    add_rows(events, 201, 240)
    with psycopg.connect(conninfo(events), autocommit=True) as conn:
        conn.execute("ALTER TABLE dst.events ADD CONSTRAINT upto CHECK (seq <= 200)")  # `dst` fails this run
    failed = lagging.run()
    assert failed.returncode != 0 and "upto" in failed.stderr, failed.stderr
    assert Counter(other_rows())[240] == 1  # `other` has them all
    with psycopg.connect(conninfo(events), autocommit=True) as conn:
        conn.execute("ALTER TABLE dst.events DROP CONSTRAINT upto")
    add_rows(events, 241, 260)
    ok = lagging.run()
    assert ok.returncode == 0, ok.stderr
    assert_each_row_once_but(other_rows(), 260, {200, 240})  # ties at the bookmarks its runs read from
    assert_each_row_once_but(lagging.rows(), 260, {200})


def test_two_destination_blocks_in_one_database_never_skip_rows_by_each_others_state(events, tmp_path):
    """Two blocks write the keyless stream into one SQLite file (tables ``events`` and ``events_copy``):
    the file's state row is keyed by the source stream, so it holds whichever block committed last.
    When ``copy`` fails a run that ``dst`` commits, the next run must give ``copy`` every row it lacks,
    not leave out the rows before ``dst``'s bookmark (before the fix, 201-239 never reached it)."""
    case = Case("sqlite", events, tmp_path, copy=True)

    def copy_rows() -> list[int]:
        return case.rows("events_copy")

    assert case.run().returncode == 0
    add_rows(events, 201, 240)
    with sqlite3.connect(case.config["path"]) as con:
        con.execute("CREATE TRIGGER upto BEFORE INSERT ON events_copy WHEN NEW.seq > 200 BEGIN SELECT RAISE(ABORT, 'upto'); END")
    failed = case.run()
    assert failed.returncode != 0 and "upto" in failed.stderr, failed.stderr
    assert max(case.rows()) == 240 and max(copy_rows()) == 200
    with sqlite3.connect(case.config["path"]) as con:
        con.execute("DROP TRIGGER upto")
    add_rows(events, 241, 260)
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    assert_each_row_once_but(copy_rows(), 260, {200})
    assert_each_row_once_but(case.rows(), 260, {200, 240})


@pytest.mark.parametrize("kind", ["postgresql", "duckdb", "sqlite"])
def test_two_destination_blocks_killed_after_a_commit_append_nothing_twice(events, tmp_path, kind):
    """Two blocks write the keyless stream into one database, each with its own state row there: a
    kill between a block's commit and the file no longer appends that window again (the stream's
    state row was shared, so a stream with two blocks read none back)."""
    case = Case(kind, events, tmp_path, copy=True)
    tables = {"dst": "events", "copy": "events_copy"}
    ties: dict[str, set[int]] = {"dst": set(), "copy": set()}
    last = 200
    # the first sync (200 rows) dies at the file's first record, an incremental one (170 more) at its third
    for kill, before, after in ((1, 0, 30), (3, 170, 20)):
        add_rows(events, last + 1, last + before)
        last += before
        read_from = seq_of((case.store.get("events", "src", "events") or {}).get("bookmark"))
        killed = case.run("--kill", f"{AT_LOCAL_SAVE}:{kill}")
        assert killed.returncode == -9, killed.stderr
        behind = {b: case.recorded(b) for b in tables}
        ahead = {b: case.committed(b) for b in tables}
        assert any(a is not None and (behind[b] is None or a > behind[b]) for b, a in ahead.items()), (behind, ahead)
        add_rows(events, last + 1, last + after)
        last += after
        ok = case.run()
        assert ok.returncode == 0, ok.stderr
        for block, table in tables.items():
            # ties: the rows at the bookmarks the killed run and this one read from, and where this block stood
            ties[block] |= {s for s in (read_from, min((r for r in behind.values() if r), default=None), ahead[block]) if s}
            assert_each_row_once_but(case.rows(table), last, ties[block])
            assert case.recorded(block) == case.committed(block) == last


@pytest.mark.parametrize("kind", ["postgresql", "duckdb", "sqlite"])
def test_a_kill_after_a_resets_first_commit_appends_nothing_twice(events, tmp_path, kind):
    """The state a destination commits carries the stream's reset epoch: the first commit after a
    reset is read back (it was not: no destination state was trusted until the file recorded one),
    and a state from before a reset, or from before a second reset, still is not."""
    case = Case(kind, events, tmp_path)
    assert case.run().returncode == 0
    expected = Counter(range(1, 201))
    assert Counter(case.rows()) == expected
    assert "epoch" not in (case.state() or {})  # never reset: states as before
    case.reset()
    epoch = case.store.epoch("events", "src", "events")
    assert epoch is not None
    killed = case.run("--kill", f"{AT_LOCAL_SAVE}:1")
    assert killed.returncode == -9, killed.stderr
    first = case.committed()
    assert first is not None and first < 200 and case.recorded() is None
    assert (case.state() or {}).get("epoch") == epoch
    expected.update(range(1, first + 1))  # the killed run's window
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    expected.update(range(first, 201))  # the rest of the reset's full read, from the committed bookmark (tied row again)
    assert Counter(case.rows()) == expected
    assert case.recorded() == case.committed() == 200
    # reset, killed at the first commit, reset again: the second reset's full read is not cut short
    case.reset()
    killed = case.run("--kill", f"{AT_LOCAL_SAVE}:1")
    assert killed.returncode == -9, killed.stderr
    second = case.committed()
    assert second is not None and second < 200 and case.recorded() is None
    expected.update(range(1, second + 1))
    case.reset()
    assert case.store.epoch("events", "src", "events") not in (None, epoch, (case.state() or {}).get("epoch"))
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    expected.update(range(1, 201))
    assert Counter(case.rows()) == expected
    assert case.recorded() == case.committed() == 200


@pytest.mark.parametrize("kind", ["postgresql", "duckdb", "sqlite"])
def test_a_destination_written_before_blocks_had_own_state_rows_is_read_back(events, tmp_path, kind):
    """A destination of an older version holds the stream's state under the source stream's key:
    its one destination block still reads it back (and writes its own row from then on)."""
    case = Case(kind, events, tmp_path)
    killed = case.run("--kill", f"{AT_LOCAL_SAVE}:2")
    assert killed.returncode == -9, killed.stderr
    behind, ahead = case.recorded(), case.committed()
    assert behind is not None and ahead is not None and behind < ahead < 200, (behind, ahead)
    case.sql("UPDATE {schema}_jupyter_di_state SET state_key = %s", (SHARED_KEY,))  # as an older version left it
    assert case.state() is None
    add_rows(events, 201, 220)
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    assert_each_row_once_but(case.rows(), 220, {ahead})
    assert case.recorded() == case.committed() == 220
    assert [r[0] for r in case.sql("SELECT state_key FROM {schema}_jupyter_di_state ORDER BY state_key")] == sorted(
        [SHARED_KEY, destination_state_key("events", "src", "events", "dst")]
    )


def test_a_shared_state_row_is_not_read_back_by_a_stream_with_two_blocks(events, tmp_path):
    """The shared row of an older version may be the other block's: with two blocks (or a file that
    remembers a second one) it is not read, so no block skips rows by another's bookmark."""
    case = Case("sqlite", events, tmp_path, copy=True)
    assert case.run().returncode == 0
    add_rows(events, 201, 240)
    assert case.recorded("dst") == case.recorded("copy") == 200
    # no rows of their own (yet), and a shared one ahead of both: 220, as if one block had written 201-220
    case.sql("DELETE FROM _jupyter_di_state")
    case.sql(
        "INSERT INTO _jupyter_di_state (state_key, state) VALUES (%s, %s)",
        (SHARED_KEY, json.dumps({"bookmark": {"at": "2024-01-01T00:03:40+00:00"}})),
    )
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    for table in ("events", "events_copy"):
        assert_each_row_once_but(case.rows(table), 240, {200})


@pytest.mark.parametrize("kind", ["postgresql", "duckdb", "sqlite"])
def test_a_kill_after_a_pinned_bookmarks_first_commit_appends_nothing_twice(events, tmp_path, kind):
    """A pinned bookmark (`state set`, the panel) asks for the rows from it again, like a reset: a
    destination's state from before the pin is not trusted, the first commit after it is."""
    case = Case(kind, events, tmp_path)
    assert case.run().returncode == 0
    expected = Counter(range(1, 201))
    at = (BASE + dt.timedelta(seconds=100)).isoformat()
    pinned = cli_process("state", "set", str(case.notebook), "src", "events", "--value", f"at={at}", cwd=tmp_path)
    assert pinned.returncode == 0, pinned.stderr
    killed = case.run("--kill", f"{AT_LOCAL_SAVE}:1")
    assert killed.returncode == -9, killed.stderr
    first = case.committed()
    assert first is not None and 100 < first < 200 and (case.store.get("events", "src", "events") or {}).get("pinned")
    expected.update(range(100, first + 1))  # the killed run's window, from the pinned bookmark
    ok = case.run()
    assert ok.returncode == 0, ok.stderr
    expected.update(range(first, 201))  # from the committed bookmark (its row tied)
    assert Counter(case.rows()) == expected
    assert case.recorded() == case.committed() == 200
