"""LOG_BASED PostgreSQL streams against the real server: snapshot, then changes, into PostgreSQL,
DuckDB and SQLite, compared row for row with the source after every run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from jupyter_di.connectors.base import LOG_BASED, ReadRequest, StreamSettings
from jupyter_di.connectors.duckdb.write import DuckDBDestination
from jupyter_di.connectors.postgres import PostgresDestination, PostgresSource
from jupyter_di.connectors.sqlite.write import SQLiteDestination
from jupyter_di.errors import ConfigError
from jupyter_di.sync.engine import write_stream
from jupyter_di.sync.spill import open_reader, spill

STATE_KEY = '["nb", "src", "items"]'


@pytest.fixture
def log_pg(pg_config):
    """The fresh database, with its replication slots dropped afterwards (a database with a slot
    cannot be dropped)."""
    yield pg_config
    with psycopg.connect(_conninfo(pg_config), autocommit=True) as conn:
        for (name,) in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE database = current_database()").fetchall():
            conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))


def _conninfo(cfg: dict[str, Any]) -> str:
    return f"host={cfg['host']} port={cfg['port']} dbname={cfg['database']} user={cfg['username']}"


def sql(cfg: dict[str, Any], *statements: str) -> None:
    with psycopg.connect(_conninfo(cfg), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


class Target:
    """One destination and how to read its table back."""

    def __init__(self, kind: str, cfg: dict[str, Any], tmp: Path) -> None:
        self.kind, self.cfg = kind, cfg
        if kind == "postgresql":
            sql(cfg, "CREATE SCHEMA IF NOT EXISTS dst")
            self.config: dict[str, Any] = dict(cfg, schema="dst")
        else:
            self.config = {"path": str(tmp / f"w.{kind}")}

    def destination(self):
        return {"postgresql": PostgresDestination, "duckdb": DuckDBDestination, "sqlite": SQLiteDestination}[self.kind](self.config)

    def rows(self, columns: str = "id, v, n", where: str = "") -> list[tuple]:
        query = f"SELECT {columns} FROM {'dst.' if self.kind == 'postgresql' else ''}items {where} ORDER BY id"
        if self.kind == "postgresql":
            with psycopg.connect(_conninfo(self.cfg)) as conn:
                return [tuple(r) for r in conn.execute(query).fetchall()]
        if self.kind == "duckdb":
            with duckdb.connect(self.config["path"], read_only=True) as con:
                return [tuple(r) for r in con.execute(query).fetchall()]
        import sqlite3

        with sqlite3.connect(self.config["path"]) as con:
            return [tuple(r) for r in con.execute(query).fetchall()]


class Sync:
    """Runs of one LOG_BASED stream into one destination, keeping the saved state as the runner does."""

    def __init__(self, cfg: dict[str, Any], target: Target, tmp: Path, delete_mode: str = "hard", stream: str = "items", **settings: Any):
        self.cfg, self.target, self.tmp, self.stream = cfg, target, tmp, stream
        self.settings = StreamSettings(stream=stream, replication_method=LOG_BASED, delete_mode=delete_mode, **settings)
        self.state: dict[str, Any] = {}
        self.runs = 0

    def run(self, bookmark: dict[str, Any] | None = None) -> ReadRequest:
        request = ReadRequest(
            settings=self.settings,
            bookmark=bookmark or self.state.get("bookmark"),
            source_state=self.state.get("source_state"),
            state_key=STATE_KEY,
        )
        with PostgresSource(self.cfg) as source:
            reader = source.read(request)
            self.runs += 1
            result = spill(reader, self.tmp / f"run{self.runs}.arrow", self.settings)
        keys = list(self.settings.key_properties or request.stats["key_properties"])
        settings = StreamSettings(
            stream=self.stream,
            replication_method=LOG_BASED,
            key_properties=keys,
            unique_constraints=keys,
            delete_mode=self.settings.delete_mode,
        )
        with self.target.destination() as destination:
            write_stream(destination, settings, open_reader(result.path), batch_states=result.batch_states, state_key=STATE_KEY)
        if result.final_state and bookmark is None:
            self.state = result.final_state
        self.last_rows = result.rows
        return request


def source_rows(cfg: dict[str, Any], columns: str = "id, v, n") -> list[tuple]:
    with psycopg.connect(_conninfo(cfg)) as conn:
        return [tuple(r) for r in conn.execute(f"SELECT {columns} FROM items ORDER BY id").fetchall()]


def make_items(cfg: dict[str, Any], rows: int = 5) -> None:
    sql(
        cfg,
        "CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(10,2), big text, tags int[], at timestamptz)",
        f"INSERT INTO items SELECT g, 'v' || g, g * 1.5, NULL, ARRAY[g, g + 1], '2024-01-01T00:00:00Z' FROM generate_series(1, {rows}) g",
    )


def as_python(rows: list[tuple]) -> list[tuple]:
    """Values as comparable Python values (SQLite keeps decimals as text)."""
    import decimal

    return [tuple(float(v) if isinstance(v, (decimal.Decimal,)) else v for v in r) for r in rows]


def same(a: list[tuple], b: list[tuple]) -> bool:
    def norm(rows):
        return [
            tuple(float(v) if isinstance(v, str) and v.replace(".", "", 1).isdigit() and "." in v else v for v in r)
            for r in as_python(rows)
        ]

    return norm(a) == norm(b)


DESTINATIONS = ["postgresql", "duckdb", "sqlite"]


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_snapshot_then_inserts_updates_deletes_hard(log_pg, tmp_path, kind):
    make_items(log_pg)
    target = Target(kind, log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path, delete_mode="hard")
    sync.run()
    assert sync.last_rows == 5
    assert sync.state["bookmark"]["lsn"].count("/") == 1
    assert same(target.rows(), source_rows(log_pg))
    sql(
        log_pg,
        "INSERT INTO items (id, v, n) VALUES (10, 'ten', 10)",
        "UPDATE items SET v = 'two' WHERE id = 2",
        "DELETE FROM items WHERE id = 3",
        "UPDATE items SET id = 40 WHERE id = 4",  # a key change: the old key goes
        "BEGIN; UPDATE items SET n = n + 1 WHERE id = 5; UPDATE items SET n = n + 1 WHERE id = 5; UPDATE items SET v = 'five' WHERE id = 5; COMMIT",
        "BEGIN; INSERT INTO items (id, v) VALUES (11, 'gone'); DELETE FROM items WHERE id = 11; COMMIT",
    )
    before = sync.state["bookmark"]["lsn"]
    sync.run()
    assert same(target.rows(), source_rows(log_pg))
    assert sync.state["bookmark"]["lsn"] > before
    assert [r[0] for r in target.rows()] == [1, 2, 5, 10, 40]
    # a run with nothing to read still moves the position on (the slot is confirmed past other work)
    sql(log_pg, "CREATE TABLE other (x int)", "INSERT INTO other VALUES (1)")
    again = sync.state["bookmark"]["lsn"]
    sync.run()
    assert sync.last_rows == 0
    assert sync.state["bookmark"]["lsn"] > again
    assert same(target.rows(), source_rows(log_pg))


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_soft_deletes_and_truncate(log_pg, tmp_path, kind):
    make_items(log_pg, 3)
    target = Target(kind, log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path, delete_mode="soft")
    sync.run()
    sql(
        log_pg,
        "DELETE FROM items WHERE id = 2",
        "BEGIN; INSERT INTO items (id, v) VALUES (7, 'brief'); DELETE FROM items WHERE id = 7; COMMIT",
    )
    sync.run()
    rows = target.rows("id, v, _di_deleted_at IS NOT NULL")
    assert [(r[0], r[1], bool(r[2])) for r in rows] == [(1, "v1", False), (2, "v2", True), (3, "v3", False), (7, "brief", True)]
    live = target.rows("id, v, n", "WHERE _di_deleted_at IS NULL")
    assert same(live, source_rows(log_pg))
    # re-inserted after a delete: live again
    sql(log_pg, "INSERT INTO items (id, v) VALUES (2, 'back')")
    sync.run()
    assert target.rows("id, v", "WHERE _di_deleted_at IS NULL") == [(1, "v1"), (2, "back"), (3, "v3")]
    # truncate marks every live row, then the rows inserted after it are live
    sql(log_pg, "TRUNCATE items", "INSERT INTO items (id, v) VALUES (100, 'after')")
    sync.run()
    assert target.rows("id, v", "WHERE _di_deleted_at IS NULL") == [(100, "after")]
    assert len(target.rows("id")) == 5


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_hard_truncate_empties(log_pg, tmp_path, kind):
    make_items(log_pg, 4)
    target = Target(kind, log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path)
    sync.run()
    sql(log_pg, "INSERT INTO items (id, v) VALUES (50, 'x')", "TRUNCATE items", "INSERT INTO items (id, v) VALUES (60, 'y')")
    sync.run()
    assert target.rows("id, v") == [(60, "y")]


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_unchanged_toast_values_keep_the_destination_value(log_pg, tmp_path, kind):
    make_items(log_pg, 2)
    big = "(SELECT string_agg(md5(g::text || random()::text), '') FROM generate_series(1, 400) g)"  # ~13 kB, not compressible
    sql(log_pg, f"UPDATE items SET big = {big} WHERE id = 1")
    target = Target(kind, log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path)
    sync.run()
    sql(log_pg, "UPDATE items SET v = 'small change' WHERE id = 1")  # big is not sent: TOAST unchanged
    sync.run()
    assert same(target.rows("id, v, big"), source_rows(log_pg, "id, v, big"))
    # inserted and updated in one window: the insert's value fills the update's gap
    sql(log_pg, f"INSERT INTO items (id, v, big) VALUES (9, 'new', {big})", "UPDATE items SET v = 'newer' WHERE id = 9")
    sync.run()
    assert same(target.rows("id, v, big"), source_rows(log_pg, "id, v, big"))
    assert len(target.rows("big", "WHERE id = 9")[0][0]) > 10_000


@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
def test_new_column_from_the_log(log_pg, tmp_path, kind):
    make_items(log_pg, 2)
    target = Target(kind, log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path)
    sync.run()
    sql(
        log_pg,
        "ALTER TABLE items ADD COLUMN extra text",
        "INSERT INTO items (id, v, extra) VALUES (3, 'c', 'x')",
        "UPDATE items SET extra = 'y' WHERE id = 1",
    )
    sync.run()
    assert target.rows("id, extra") == [(1, "y"), (2, None), (3, "x")]


def test_the_same_row_updated_many_times_in_one_transaction(log_pg, tmp_path):
    make_items(log_pg, 1)
    target = Target("duckdb", log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path)
    sync.run()
    sql(log_pg, "DO $$BEGIN FOR i IN 1..500 LOOP UPDATE items SET n = i WHERE id = 1; END LOOP; END$$")
    sync.run()
    assert sync.last_rows == 500
    assert same(target.rows(), [(1, "v1", 500.0)])


def test_bookmark_override_reads_from_an_earlier_position_without_saving(log_pg, tmp_path):
    make_items(log_pg, 1)
    target = Target("duckdb", log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path)
    sync.run()
    start = dict(sync.state["bookmark"])
    sql(log_pg, "INSERT INTO items (id, v) VALUES (2, 'b')")
    sync.run()
    saved = dict(sync.state["bookmark"])
    sync.run(
        bookmark=start
    )  # re-reads the insert (the slot was not advanced past it: this run's start advances to the saved position only)
    assert sync.state["bookmark"] == saved


def test_requirements_one_clear_error_each(log_pg, tmp_path):
    sql(
        log_pg,
        "CREATE TABLE nokey (a int, b text)",
        "CREATE TABLE full_nokey (a int, b text)",
        "ALTER TABLE full_nokey REPLICA IDENTITY FULL",
    )
    target = Target("duckdb", log_pg, tmp_path)
    with pytest.raises(ConfigError, match="no primary key and no REPLICA IDENTITY FULL") as err:
        Sync(log_pg, target, tmp_path, stream="nokey").run()
    assert "REPLICA IDENTITY FULL" in (err.value.fix or "")
    with pytest.raises(ConfigError, match="set key_properties"):
        Sync(log_pg, target, tmp_path, stream="full_nokey").run()
    # with key_properties a REPLICA IDENTITY FULL table works
    sql(log_pg, "INSERT INTO full_nokey VALUES (1, 'x')")
    keyed = Sync(log_pg, target, tmp_path, stream="full_nokey", key_properties=["a"])
    keyed.run()
    sql(log_pg, "UPDATE full_nokey SET b = 'y' WHERE a = 1", "INSERT INTO full_nokey VALUES (2, 'z')", "DELETE FROM full_nokey WHERE a = 2")
    keyed.run()
    with duckdb.connect(target.config["path"], read_only=True) as con:
        assert con.execute("SELECT a, b FROM full_nokey ORDER BY a").fetchall() == [(1, "y")]
    # a role without REPLICATION
    make_items(log_pg, 1)
    sql(log_pg, "DROP ROLE IF EXISTS jdi_plain", "CREATE ROLE jdi_plain LOGIN", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO jdi_plain")
    plain = dict(log_pg, username="jdi_plain")
    with pytest.raises(ConfigError, match="REPLICATION attribute") as err:
        Sync(plain, target, tmp_path).run()
    assert "ALTER ROLE" in (err.value.fix or "")
    sql(log_pg, "DROP OWNED BY jdi_plain", "DROP ROLE jdi_plain")
    # a named publication that does not exist / does not include the table
    with pytest.raises(ConfigError, match="publication 'nope' does not exist"):
        Sync(dict(log_pg, publication="nope"), target, tmp_path).run()
    sql(log_pg, "CREATE PUBLICATION other_pub FOR TABLE nokey")
    with pytest.raises(ConfigError, match="does not include table public.items"):
        Sync(dict(log_pg, publication="other_pub"), target, tmp_path).run()


def test_a_lost_slot_takes_a_new_snapshot_and_says_so(log_pg, tmp_path):
    make_items(log_pg, 2)
    target = Target("postgresql", log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path)
    sync.run()
    slot = sync.state["source_state"]["slot"]
    sql(log_pg, f"SELECT pg_drop_replication_slot('{slot}')", "DELETE FROM items WHERE id = 1")
    request = sync.run()
    assert any("no longer exists" in n for n in request.stats["notes"])
    assert same(target.rows(), source_rows(log_pg))


def test_a_non_sql_destination_is_refused_up_front(log_pg, tmp_path):
    from jupyter_di.connectors.files.write import FilesDestination

    make_items(log_pg, 1)
    settings = StreamSettings(stream="items", replication_method=LOG_BASED)
    request = ReadRequest(settings=settings, state_key=STATE_KEY)
    with PostgresSource(log_pg) as source:
        result = spill(source.read(request), tmp_path / "s.arrow", settings)
    with pytest.raises(ConfigError, match="cannot apply a LOG_BASED stream"):
        write_stream(FilesDestination({"path": str(tmp_path / "out"), "format": "csv"}), settings, open_reader(result.path))


def test_commit_time_is_the_soft_delete_time(log_pg, tmp_path):
    make_items(log_pg, 1)
    target = Target("postgresql", log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path, delete_mode="soft")
    sync.run()
    before = dt.datetime.now(dt.timezone.utc)
    sql(log_pg, "DELETE FROM items WHERE id = 1")
    sync.run()
    (when,) = target.rows("_di_deleted_at")[0]
    assert abs((when - before).total_seconds()) < 60


def test_a_million_row_transaction(log_pg, tmp_path):
    """One transaction of 1,000,000 inserts (and updates of some of them) arrives whole, in bounded
    chunks (the read holds one chunk of changes at a time)."""
    make_items(log_pg, 1)
    target = Target("duckdb", log_pg, tmp_path)
    sync = Sync(log_pg, target, tmp_path)
    sync.run()
    sql(
        log_pg,
        "BEGIN; INSERT INTO items (id, v, n) SELECT g, 'm' || g, g FROM generate_series(2, 1000001) g; "
        "UPDATE items SET v = 'updated' WHERE id % 100000 = 0; DELETE FROM items WHERE id = 1; COMMIT",
    )
    sync.run()
    assert sync.last_rows == 1_000_000 + 10 + 1
    with duckdb.connect(target.config["path"], read_only=True) as con:
        assert con.execute("SELECT count(*), count(*) FILTER (WHERE v = 'updated'), min(id), max(id) FROM items").fetchone() == (
            1_000_000,
            10,
            2,
            1_000_001,
        )


def test_notebook_run_state_show_override_and_reset(log_pg, tmp_path, capsys):
    """Through the CLI: runs, the LSN in `state show` with the slot's retained WAL, a one-run
    `--bookmark ...lsn=` override, and `state reset` dropping the slot (the next run re-snapshots)."""
    import json

    from tests.support.notebooks import cli_main, duckdb_query, pg_source, rows_read, run_notebook, write_notebook

    make_items(log_pg, 3)
    nb = write_notebook(
        tmp_path / "cdc.ipynb",
        [
            "%load_ext jupyter_di",
            pg_source(log_pg, "  items:\n    replication_method: LOG_BASED\n    delete_mode: hard\n"),
            "%%di_destination dst --upstream src\ndestination: duckdb\nconfig:\n  path: out.duckdb\n",
        ],
    )
    code, _, err = run_notebook(nb, capsys=capsys)
    assert code == 0, err
    shown = json.loads(cli_main(capsys, "state", "show", str(nb)).out)
    first = shown["bookmarks"]["src.items"]["lsn"]
    slot = shown["server_state"]["src.items"]["slot"]
    assert shown["server_state"]["src.items"]["confirmed_lsn"] <= first
    sql(log_pg, "DELETE FROM items WHERE id = 1", "INSERT INTO items (id, v) VALUES (9, 'nine')")
    code, _, err = run_notebook(nb, capsys=capsys)
    assert code == 0, err
    assert duckdb_query(tmp_path / "out.duckdb", "SELECT id FROM items ORDER BY id") == [(2,), (3,), (9,)]
    saved = json.loads(cli_main(capsys, "state", "show", str(nb)).out)["bookmarks"]["src.items"]
    code, _, err = run_notebook(nb, "--bookmark", f"src.items.lsn={first}", capsys=capsys)  # re-applies the same changes
    assert code == 0, err
    assert json.loads(cli_main(capsys, "state", "show", str(nb)).out)["bookmarks"]["src.items"] == saved
    assert duckdb_query(tmp_path / "out.duckdb", "SELECT id FROM items ORDER BY id") == [(2,), (3,), (9,)]
    code, _, err = run_notebook(nb, "--bookmark", "src.items.updated_at=2024-01-01", capsys=capsys)
    assert code != 0 and "log position" in err
    reset = cli_main(capsys, "state", "reset", str(nb), "src")
    assert f"dropped replication slot '{slot}'" in reset.out
    with psycopg.connect(_conninfo(log_pg)) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()[0] == 0
    code, out, err = run_notebook(nb, capsys=capsys)
    assert code == 0, err
    assert rows_read(out) == 3  # a new snapshot


def test_log_based_is_refused_for_sources_that_cannot_read_a_log(tmp_path, capsys):
    import sqlite3

    from tests.support.notebooks import run_notebook, write_notebook

    with sqlite3.connect(tmp_path / "in.sqlite") as con:
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    nb = write_notebook(
        tmp_path / "x.ipynb",
        [
            "%load_ext jupyter_di",
            f"%%di_source src\nsource: sqlite\nconfig:\n  path: {tmp_path / 'in.sqlite'}\nstreams:\n  t:\n    replication_method: LOG_BASED\n",
        ],
    )
    code, _, err = run_notebook(nb, capsys=capsys)
    assert code != 0 and "cannot read a stream by log (LOG_BASED)" in err
