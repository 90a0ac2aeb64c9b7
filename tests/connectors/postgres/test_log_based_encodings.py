"""Source databases whose encoding is not UTF8 (LATIN1, SQL_ASCII): every read path (the LOG_BASED
snapshot and its changes, FULL_TABLE, INCREMENTAL) gives the text a UTF8 client sees, and bytes a
SQL_ASCII database holds that are not UTF-8 stop the read with one message naming the column.

Why these tests: ``pgoutput`` and binary COPY both send text in the *session's* client encoding,
which defaults to the database's; the Arrow side takes every byte as UTF-8."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jupyter_di.connectors.base import FULL_TABLE, INCREMENTAL, ReadRequest, StreamSettings
from jupyter_di.connectors.postgres import PostgresSource
from jupyter_di.errors import ConfigError
from tests.connectors.postgres.test_log_based import Sync, Target

# Latin-1 letters and signs (no euro sign: LATIN1 has none), an empty string and plain ASCII
LATIN1_TEXT = ["café", "Straße", "Ærøskøbing ñ ¿ « » µ ½ ÿ", "naïve", "", "plain"]


def utf8_conninfo(cfg: dict[str, Any]) -> str:
    """A connection that sees the database's text as UTF8 (the reference every destination must match)."""
    return f"host={cfg['host']} port={cfg['port']} dbname={cfg['database']} user={cfg['username']} client_encoding=UTF8"


def run_sql(cfg: dict[str, Any], *statements: str, params: tuple | None = None) -> None:
    with psycopg.connect(utf8_conninfo(cfg), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement, params)


def source_rows(cfg: dict[str, Any]) -> list[tuple]:
    with psycopg.connect(utf8_conninfo(cfg)) as conn:
        return [tuple(r) for r in conn.execute('SELECT id, "prénom", v, tags FROM items ORDER BY id').fetchall()]


@contextmanager
def encoded_database(pg_server: dict[str, Any], encoding: str) -> Iterator[dict[str, Any]]:
    """A fresh database of ``encoding`` (C locale); its slots and the database are dropped afterwards."""
    name = "enc_" + uuid.uuid4().hex[:10]
    admin = f"host={pg_server['host']} port={pg_server['port']} user={pg_server['username']} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        yield {"host": pg_server["host"], "port": pg_server["port"], "database": name, "username": pg_server["username"], "password": ""}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for (slot,) in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE database = %s", (name,)).fetchall():
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["LATIN1", "SQL_ASCII"])
def encoded_pg(request, pg_server) -> Iterator[dict[str, Any]]:
    with encoded_database(pg_server, request.param) as cfg:
        yield {**cfg, "encoding": request.param}


@pytest.fixture
def sql_ascii_pg(pg_server) -> Iterator[dict[str, Any]]:
    with encoded_database(pg_server, "SQL_ASCII") as cfg:
        yield cfg


def make_items(cfg: dict[str, Any]) -> None:
    """A table with a non-ASCII column name, text, varchar and a text array (the array is cast by
    the server on the change path, the others in the client)."""
    run_sql(cfg, 'CREATE TABLE items (id int PRIMARY KEY, "prénom" text, v varchar(40), tags text[], n int)')
    with psycopg.connect(utf8_conninfo(cfg), autocommit=True) as conn:
        for i, text in enumerate(LATIN1_TEXT, start=1):
            conn.execute("INSERT INTO items VALUES (%s, %s, %s, %s, %s)", (i, text, text[::-1], [text, "é"], i))


def pg_target_rows(target: Target) -> list[tuple]:
    with psycopg.connect(utf8_conninfo(target.cfg)) as conn:
        return [tuple(r) for r in conn.execute('SELECT id, "prénom", v, tags FROM dst.items ORDER BY id').fetchall()]


def duckdb_target_rows(target: Target) -> list[tuple]:
    import duckdb

    with duckdb.connect(target.config["path"], read_only=True) as con:
        return [tuple(r) for r in con.execute('SELECT id, "prénom", v, tags FROM items ORDER BY id').fetchall()]


def changes(cfg: dict[str, Any], extra: list[str]) -> None:
    """Inserts, updates (of the non-ASCII column too), a key change and deletes, in non-ASCII text."""
    with psycopg.connect(utf8_conninfo(cfg), autocommit=True) as conn:
        conn.execute("INSERT INTO items VALUES (%s, %s, %s, %s, %s)", (10, "Ürgen Gärtner", "ÿ", ["à", "ç"], 10))
        conn.execute('UPDATE items SET "prénom" = %s, v = %s WHERE id = 1', ("Crème brûlée", "Ångström"))
        conn.execute("UPDATE items SET tags = %s WHERE id = 2", (["süß", None],))
        conn.execute("UPDATE items SET id = 20 WHERE id = 3")
        conn.execute("DELETE FROM items WHERE id = 4")
        with conn.transaction():
            for text in extra:
                conn.execute('UPDATE items SET "prénom" = "prénom" || %s WHERE id = 5', (text,))


@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
def test_log_based_snapshot_and_changes_keep_the_text(encoded_pg, tmp_path, kind):
    make_items(encoded_pg)
    if encoded_pg["encoding"] == "SQL_ASCII":  # it keeps the UTF-8 bytes a UTF8 client wrote: a euro sign too
        run_sql(encoded_pg, "UPDATE items SET v = v || '€' WHERE id = 6")
    target = Target(kind, encoded_pg, tmp_path)
    rows = pg_target_rows if kind == "postgresql" else duckdb_target_rows
    sync = Sync(encoded_pg, target, tmp_path, delete_mode="hard")
    sync.run()
    assert sync.last_rows == len(LATIN1_TEXT)
    expected = source_rows(encoded_pg)
    assert expected[0][1] == "café"
    assert rows(target) == expected
    changes(encoded_pg, ["é", "ß", "½"])
    sync.run()
    expected = source_rows(encoded_pg)
    assert [r[0] for r in expected] == [1, 2, 5, 6, 10, 20]
    assert expected[0][1:3] == ("Crème brûlée", "Ångström")
    assert rows(target) == expected


def read_all(cfg: dict[str, Any], method: str, bookmark: dict[str, Any] | None = None) -> list[tuple]:
    settings = StreamSettings(
        stream="items",
        replication_method=method,
        key_properties=["id"],
        bookmark_properties=list(bookmark or {"n": None}) if method == INCREMENTAL else [],
    )
    with PostgresSource(dict(cfg, schema="public")) as source:
        table = source.read(ReadRequest(settings=settings, bookmark=bookmark)).read_all()
    return sorted(tuple(r[c] for c in ("id", "prénom", "v", "tags")) for r in table.to_pylist())


@pytest.mark.parametrize("method", [FULL_TABLE, INCREMENTAL])
def test_full_table_and_incremental_reads_keep_the_text(encoded_pg, method):
    make_items(encoded_pg)
    expected = source_rows(encoded_pg)
    assert read_all(encoded_pg, method) == expected
    if method == INCREMENTAL:
        assert read_all(encoded_pg, method, {"n": 4}) == [r for r in expected if r[0] >= 4]
        # a bookmark of non-ASCII text on a non-ASCII column is compared by the server as the same text
        with psycopg.connect(utf8_conninfo(encoded_pg)) as conn:
            ids = [r[0] for r in conn.execute('SELECT id FROM items WHERE "prénom" >= %s ORDER BY id', ("naïve",)).fetchall()]
        assert 1 < len(ids) < len(expected)
        assert read_all(encoded_pg, method, {"prénom": "naïve"}) == [r for r in expected if r[0] in ids]
        # keyset pages: each page starts after the last row's (non-ASCII) bookmark value
        assert read_all({**encoded_pg, "page_rows": 1}, method, {"prénom": "naïve"}) == [r for r in expected if r[0] in ids]


# -- SQL_ASCII: bytes that are not UTF-8 ---------------------------------------------------------


def insert_raw(cfg: dict[str, Any], id_: int, raw: str) -> None:
    """A row whose ``v`` holds the bytes ``raw`` (hex) as they are: SQL_ASCII checks nothing."""
    run_sql(cfg, f"INSERT INTO items (id, \"prénom\", v, n) VALUES ({id_}, 'ok', convert_from('\\x{raw}'::bytea, 'SQL_ASCII'), {id_})")


def assert_names_the_column(exc: pytest.ExceptionInfo) -> None:
    text = str(exc.value)
    assert "column 'v'" in text, text
    assert "SQL_ASCII" in text and "UTF-8" in text, text
    assert exc.value.fix, text


@pytest.mark.parametrize("method", [FULL_TABLE, INCREMENTAL])
def test_sql_ascii_bytes_that_are_not_utf8_stop_the_read_naming_the_column(sql_ascii_pg, method):
    make_items(sql_ascii_pg)
    insert_raw(sql_ascii_pg, 7, "e9ff41")
    with pytest.raises(ConfigError) as exc:
        read_all(sql_ascii_pg, method)
    assert_names_the_column(exc)


@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
def test_sql_ascii_bytes_that_are_not_utf8_stop_a_log_based_run(sql_ascii_pg, tmp_path: Path, kind):
    make_items(sql_ascii_pg)
    target = Target(kind, sql_ascii_pg, tmp_path)
    rows = pg_target_rows if kind == "postgresql" else duckdb_target_rows
    sync = Sync(sql_ascii_pg, target, tmp_path, delete_mode="hard")
    sync.run()
    position = sync.state["bookmark"]["lsn"]
    before = rows(target)
    run_sql(sql_ascii_pg, "UPDATE items SET v = 'fine' WHERE id = 1")
    insert_raw(sql_ascii_pg, 8, "41c328")  # 'A' then a cut two-byte sequence
    with pytest.raises(ConfigError) as exc:
        sync.run()
    assert_names_the_column(exc)
    assert sync.state["bookmark"]["lsn"] == position  # nothing committed past the bad change
    assert rows(target) == before  # the change before the bad one is not committed either: one window
    # the log keeps the bad insert: every run refuses it, without committing anything
    with pytest.raises(ConfigError):
        sync.run()
    assert sync.state["bookmark"]["lsn"] == position
    # a snapshot read (a reset) names the column too; once the value is fixed at the source, it succeeds
    again = Sync(sql_ascii_pg, target, tmp_path, delete_mode="hard")
    with pytest.raises(ConfigError) as exc:
        again.run()
    assert_names_the_column(exc)
    run_sql(sql_ascii_pg, "UPDATE items SET v = 'repaired' WHERE id = 8")
    again.run()
    assert rows(target) == source_rows(sql_ascii_pg)


def test_a_latin1_destination_stores_latin1_text_and_refuses_what_it_cannot_hold(pg_server):
    """The destination side of the same setting: text arrives as UTF-8 and the server converts it;
    a character LATIN1 has no room for (the euro sign) is one error saying so, and nothing is written."""
    import pyarrow as pa

    from jupyter_di.connectors.postgres import PostgresDestination
    from jupyter_di.errors import SchemaMismatch
    from jupyter_di.sync.engine import write_stream

    with encoded_database(pg_server, "LATIN1") as cfg:
        settings = StreamSettings(stream="notes", replication_method=FULL_TABLE)
        with PostgresDestination(dict(cfg, schema="public")) as destination:
            write_stream(destination, settings, pa.table({"id": [1, 2], "prénom": LATIN1_TEXT[:2]}).to_reader())
        with psycopg.connect(utf8_conninfo(cfg)) as conn:
            assert [r[0] for r in conn.execute('SELECT "prénom" FROM notes ORDER BY id').fetchall()] == LATIN1_TEXT[:2]
        with pytest.raises(SchemaMismatch) as exc:
            with PostgresDestination(dict(cfg, schema="public")) as destination:
                write_stream(destination, settings, pa.table({"id": [3], "prénom": ["5 €"]}).to_reader())
        assert "ENCODING 'UTF8'" in (exc.value.fix or ""), str(exc.value)
        with psycopg.connect(utf8_conninfo(cfg)) as conn:
            assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 2  # the FULL_TABLE load kept the old rows
