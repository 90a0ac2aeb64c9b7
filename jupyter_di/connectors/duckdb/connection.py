"""The DuckDB connector's config and how it opens the database file.

Why a module of its own: the source and the destination open the same file from the same config,
and both must turn DuckDB's lock and configuration errors into one ``ConnectionFailed`` that says
what to do.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

import duckdb

from ...errors import ConnectionFailed
from .._shared.db_file import first_line, resolve_path
from ..base import ConfigField

log = logging.getLogger(__name__)

HEADERS_BYTES = 3 * 4096
"""DuckDB's main header and its two database headers: a file shorter than this is no database
(DuckDB refuses it, "not a valid DuckDB database file" or "could not read enough bytes")."""

_OPENING = threading.Lock()
"""One ``duckdb.connect`` at a time in this process.  Two threads opening one file that no connection
holds (two destination blocks writing it at once) both create its instance, and the second may use it
before DuckDB's Python client has registered its own functions there: its next statement over an Arrow
batch failed with "Table Function with name python_arrow_scan does not exist!" (2 runs in 150; two
threads opening and writing one file: 123-289 writes in 800, none with this lock)."""

CONFIG = [
    ConfigField("path", "path", required=True, description="The DuckDB database file (relative to the notebook's folder)."),
    ConfigField("schema", "string", default="main", description="The schema to read from / write to."),
    ConfigField(
        "memory_limit",
        "string",
        default="auto",
        description="Cap on DuckDB's buffer memory while writing (DuckDB spills beyond it): 'auto' is 100MB (64MB for a "
        "FULL_TABLE load without unique_constraints) or 2MB per column if more; a size such as '512MB'; '' keeps DuckDB's "
        "own (80% of RAM).",
    ),
]


def connection_failed(path: str, exc: Exception) -> ConnectionFailed:
    text = first_line(exc)
    if "lock" in text.lower():
        return ConnectionFailed(
            f"the DuckDB file {path} is locked by another process ({text}).",
            fix="close the other program or notebook that has the file open, then run again.",
        )
    if "different configuration" in text:
        return ConnectionFailed(
            f"the DuckDB file {path} is already open in this process with other settings (e.g. read-only).",
            fix="close the other connection to this file first (or write to another file).",
        )
    return ConnectionFailed(
        f"cannot open the DuckDB file {path}: {text}",
        fix="check that the path is a DuckDB database you may read and write.",
    )


def open_duckdb(path: str, *, reading: bool) -> duckdb.DuckDBPyConnection:
    """A connection with the session in UTC.

    Both sides open the file in DuckDB's default mode, because DuckDB shares
    one instance per file *and configuration* within a process: a read-only
    source would lock out a destination (or a notebook's own connection) on
    the same file.  A source falls back to read-only when another process
    holds the file read-only.
    """
    try:
        if not reading:
            _ensure_database_file(path)
        try:
            with _OPENING:
                con = duckdb.connect(path)
        except duckdb.IOException as exc:
            if not (reading and "lock" in str(exc).lower()):
                raise
            with _OPENING:
                con = duckdb.connect(path, read_only=True)
        con.execute("SET SESSION TimeZone = 'UTC'")
        return con
    except duckdb.Error as exc:
        raise connection_failed(path, exc) from exc


def _ensure_database_file(path: str) -> None:
    """Create a destination's new file atomically, so a kill -9 never leaves a file DuckDB refuses.

    DuckDB writes a new file's headers after creating it: a process killed in between left an empty
    or header-short file that every later run failed on.  A new file is now made under a temporary
    name in the same folder and linked into place once DuckDB has closed it.  A file already there
    that is shorter than DuckDB's headers, has no WAL beside it, and is empty, all zeros or starts
    like a DuckDB header is such a leftover (it holds no data): it is replaced, and the log says so.
    Any other file is left for DuckDB to open or refuse.
    """
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        size = None
    if size is not None and not _is_unfinished_creation(path, size):
        return
    folder, name = os.path.split(path)
    temp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.creating")
    try:
        duckdb.connect(temp).close()  # writes the headers of an empty database
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)  # on disk before its name is
        finally:
            os.close(fd)
        if size is None:
            _publish(temp, path)
        else:
            log.warning(
                "the DuckDB file %s is %d bytes, shorter than DuckDB's headers (a run killed while creating it): replacing it with a new empty database",
                path,
                size,
            )
            os.replace(temp, path)
    finally:
        for leftover in (temp, temp + ".wal"):
            try:
                os.remove(leftover)
            except FileNotFoundError:
                pass


def _publish(temp: str, path: str) -> None:
    """Put the finished file in place unless another process created one meanwhile (theirs wins)."""
    try:
        os.link(temp, path)  # atomic, and never over an existing file
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links
        if not os.path.exists(path):
            os.replace(temp, path)


def _is_unfinished_creation(path: str, size: int) -> bool:
    if size >= HEADERS_BYTES or os.path.exists(path + ".wal"):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(size)
    except OSError:  # unreadable: DuckDB's own error says so
        return False
    return not head.strip(b"\0") or head[8:12] == b"DUCK"


class DuckDBConnector:
    """Config handling shared by the source and the destination."""

    config: dict[str, Any]

    @property
    def schema(self) -> str:
        return self.config.get("schema") or "main"

    def path(self, *, must_exist: bool) -> str:
        """The database file (a source needs the file, a destination its folder)."""
        return resolve_path(self.config, must_exist=must_exist, system="DuckDB")
