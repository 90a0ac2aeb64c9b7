"""The DuckDB connector's config and how it opens the database file.

Why a module of its own: the source and the destination open the same file from the same config,
and both must turn DuckDB's lock and configuration errors into one ``ConnectionFailed`` that says
what to do.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ...errors import ConnectionFailed
from .._shared.db_file import first_line, resolve_path
from ..base import ConfigField

CONFIG = [
    ConfigField("path", "path", required=True, description="The DuckDB database file (relative to the notebook's folder)."),
    ConfigField("schema", "string", default="main", description="The schema to read from / write to."),
    ConfigField(
        "memory_limit",
        "string",
        default="auto",
        description="Cap on DuckDB's buffer memory while writing (DuckDB spills beyond it): 'auto' is 100MB or 2MB per "
        "column if more; a size such as '512MB'; '' keeps DuckDB's own (80% of RAM).",
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
        try:
            con = duckdb.connect(path)
        except duckdb.IOException as exc:
            if not (reading and "lock" in str(exc).lower()):
                raise
            con = duckdb.connect(path, read_only=True)
        con.execute("SET SESSION TimeZone = 'UTC'")
        return con
    except duckdb.Error as exc:
        raise connection_failed(path, exc) from exc


class DuckDBConnector:
    """Config handling shared by the source and the destination."""

    config: dict[str, Any]

    @property
    def schema(self) -> str:
        return self.config.get("schema") or "main"

    def path(self, *, must_exist: bool) -> str:
        """The database file (a source needs the file, a destination its folder)."""
        return resolve_path(self.config, must_exist=must_exist, system="DuckDB")
