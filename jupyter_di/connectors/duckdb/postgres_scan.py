"""A PostgreSQL table read by DuckDB's own ``postgres`` extension straight into a DuckDB table.

Why: for PostgreSQL -> DuckDB the client's CPU decides the speed on a small machine, and most of
ours went to decoding: ADBC decodes the server's binary COPY data into Arrow (0.73 s of CPU per 1M
rows of the benchmark table) and DuckDB then imports the Arrow (0.15 s); DuckDB's scanner decodes
the same COPY data straight into DuckDB vectors (about 0.2 s) on parallel connections that share
one exported snapshot.  ``benchmarks/sync.py`` measures both.  No other reader of ours comes close,
so where the scanner can read a stream exactly as ``Source.read`` would, the scanner reads it.

When: the source offers a FULL_TABLE stream with its table's place (``BinaryCopy.table``: a primary
server, not SQL_ASCII); the extension exists for the running DuckDB (the
``duckdb-extension-postgres-scanner`` wheel, installed by the ``postgres-scanner`` extra, or one
installed with DuckDB's ``INSTALL postgres``); every column's PostgreSQL type is one the scanner
reads to the same values as our Arrow path (``scanned_as_read``: checked column by column against
that path, ``tests/connectors/duckdb/test_postgres_scan.py``; ``character(n)`` is not: the scanner
strips its padding); and the scanner's DuckDB type of every column is the table's.  Anything else
declines before a row is read, and the stream goes through Arrow as before.

The password never appears in SQL text, in DuckDB's settings or in an error message: it goes into
a libpq password file (mode 0600, removed when the statement ends) named in the connection string,
which is a bound parameter of ``postgres_scan``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ...errors import BlockFailed
from .._shared.db_file import first_line
from .._shared.sql_names import quote_ident
from ..base import BinaryCopy, PostgresTable

EXTENSION = "postgres_scanner"
WHEEL_PACKAGES = ("duckdb_extension_postgres_scanner", "duckdb_ext")
"""Wheels that ship the extension for one DuckDB version, under ``extensions/v<version>/``."""

_SCALAR_TYPES = (
    r"smallint|integer|bigint|boolean|double precision|text|name|character varying(\(\d+\))?|date|bytea"
    r"|numeric\(\d+,\d+\)|time(\(\d\))? without time zone|timestamp(\(\d\))? with(out)? time zone"
)
_SCANNED_AS_READ = re.compile(rf"^(?:(?:{_SCALAR_TYPES})(\[\])?|jsonb)$")
_SOURCE_ERROR = re.compile(r"postgres|\bCOPY\b|\bPQ", re.IGNORECASE)


def scanned_as_read(sql_type: str) -> bool:
    """Whether DuckDB's scanner reads a column of this PostgreSQL type (``format_type()``'s spelling) to
    the values our Arrow path reads: not ``character(n)`` (padding stripped), ``uuid``, ``interval``,
    ``timetz``, network types (other DuckDB types or text forms), ``real`` (FLOAT, not DOUBLE)."""
    return bool(_SCANNED_AS_READ.match(sql_type))


@functools.cache
def extension_file() -> str | None:
    """The extension built for the running DuckDB: from a wheel that ships it, else DuckDB's own
    extension directory (``INSTALL postgres``); None when neither has it."""
    version = "v" + duckdb.__version__
    for package in WHEEL_PACKAGES:
        spec = importlib.util.find_spec(package)
        for base in (spec.submodule_search_locations or []) if spec else []:
            root = Path(base) / "extensions" / version
            for candidate in (root / f"{EXTENSION}.duckdb_extension", *sorted(root.glob(f"*/{EXTENSION}.duckdb_extension"))):
                if candidate.is_file():
                    return str(candidate)
    con = duckdb.connect()
    try:
        # no bound parameter: DuckDB 1.5 imports pandas at a process's first one (0.26 s, 90 MB)
        row = con.execute(
            "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'postgres_scanner' AND installed AND install_path <> ''"
        ).fetchone()
    finally:
        con.close()
    return row[0] if row and os.path.isfile(row[0]) else None


def load(con: duckdb.DuckDBPyConnection) -> bool:
    """Load the extension into ``con``'s database (once per database); False when it cannot be."""
    path = extension_file()
    if path is None:
        return False
    try:
        con.load_extension(path)
    except duckdb.Error:
        return False  # another platform's build, or a damaged file: the Arrow path reads the stream
    return True


class Declined(Exception):
    """The scanner cannot read this stream as ``Source.read`` would: it goes through Arrow."""


def insert_scanned(con: duckdb.DuckDBPyConnection, table_sql: str, copy: BinaryCopy) -> int:
    """Insert every row of ``copy``'s table into the (empty, staging) table ``table_sql``, in the open
    transaction; the number of rows.  Raises ``Declined`` before a row is read when a column's type
    differs from the table's, and records a failure of the PostgreSQL side on ``copy``
    (``BinaryCopy.read_failed``) before raising it."""
    place = copy.table
    if place is None or not all(scanned_as_read(c.sql_type) for c in copy.columns) or "\n" in place.password or "\r" in place.password:
        raise Declined  # (a password file holds one password per line)
    names = ", ".join(quote_ident(c.name) for c in copy.columns)
    scan = f"SELECT {names} FROM postgres_scan(?, ?, ?)"
    with _password_file(place) as dsn:
        params = [dsn, place.schema, place.name]
        try:
            scanned = con.execute(f"{scan} LIMIT 0", params).description or []
        except duckdb.Error as exc:
            raise _read_failed(copy, exc) from exc
        table = con.execute(f"SELECT {names} FROM {table_sql} LIMIT 0").description or []
        for column, got, want in zip(copy.columns, scanned, table, strict=True):
            if str(got[1]) != str(want[1]) and not (column.sql_type == "jsonb" and str(got[1]) == "VARCHAR" and str(want[1]) == "JSON"):
                raise Declined
        try:
            row = con.execute(f"INSERT INTO {table_sql} ({names}) {scan}", params).fetchone()
        except duckdb.Error as exc:
            if _SOURCE_ERROR.search(str(exc)):
                raise _read_failed(copy, exc) from exc
            raise  # DuckDB's own (memory, disk): the destination's error
    return int(row[0]) if row else 0


def _read_failed(copy: BinaryCopy, exc: duckdb.Error) -> BlockFailed:
    """The scanner's read failed on the PostgreSQL side: recorded on ``copy`` (a notebook run fails the
    source block with it), and one error that says so (nothing of the stream was committed)."""
    copy.read_failed(exc)
    place = copy.table
    where = f"{place.schema}.{place.name}" if place else "the table"
    return BlockFailed(
        f"DuckDB's postgres scanner could not read {where}: {first_line(exc)}; nothing of this stream was committed.",
        fix="fix the cause on the PostgreSQL side and run again (or set postgres_scanner: false to read through Arrow).",
    )


@contextmanager
def _password_file(place: PostgresTable) -> Iterator[str]:
    """The connection string for the scanner, with the password in a libpq password file of its own
    (``*:*:*:*:password``, mode 0600) for as long as the statement runs."""
    if not place.password:
        yield place.conninfo
        return
    fd, path = tempfile.mkstemp(prefix="jupyter-di-", suffix=".pgpass")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("*:*:*:*:" + place.password.replace("\\", "\\\\").replace(":", "\\:") + "\n")
        yield f"{place.conninfo} passfile='{_conninfo_quote(path)}'"
    finally:
        os.unlink(path)


def _conninfo_quote(value: str) -> str:
    """A value for a libpq keyword/value string inside single quotes."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
