"""The SQLite connector's config, how it opens the database file, and its errors in plain words."""

from __future__ import annotations

import sqlite3
import urllib.parse
from typing import Any

from ...errors import ConnectionFailed, DIError, SchemaMismatch
from .._shared.db_file import first_line
from ..base import ConfigField

CONFIG = [
    ConfigField("path", "path", required=True, description="The SQLite database file (relative to the notebook's folder)."),
    ConfigField("timeout", "number", default=30, description="Seconds to wait for a lock held by another writer.", minimum=0, maximum=3600),
]


def translate_error(path: str, exc: Exception) -> DIError | None:
    text = first_line(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return ConnectionFailed(
            f"the SQLite file {path} is locked by another connection ({text}).",
            fix="let the other writer finish (or close it), or raise config.timeout.",
        )
    if "readonly" in low or "read-only" in low or "unable to open" in low or "disk i/o" in low:
        return ConnectionFailed(
            f"cannot write the SQLite file {path} ({text}).",
            fix="check that the file and its folder are writable by this process.",
        )
    if "not a database" in low:
        return ConnectionFailed(f"{path} is not a SQLite database ({text}).", fix="point config.path at a SQLite file.")
    if isinstance(exc, (sqlite3.IntegrityError, OverflowError, sqlite3.InterfaceError)):
        return SchemaMismatch(
            f"the rows do not fit the SQLite table: {text}",
            fix="check the column types and unique_constraints.",
        )
    return None


def open_sqlite(path: str, timeout: float, *, read_only: bool) -> sqlite3.Connection:
    """An autocommit-mode connection (transactions are explicit) that may cross threads."""
    target = f"file:{urllib.parse.quote(path)}?mode={'ro' if read_only else 'rwc'}"
    try:
        con = sqlite3.connect(target, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
        con.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return con
    except sqlite3.Error as exc:
        err = translate_error(path, exc) or ConnectionFailed(f"cannot open the SQLite file {path}: {first_line(exc)}")
        raise err from exc


class SQLiteConnector:
    """Config handling shared by the source and the destination."""

    config: dict[str, Any]

    @property
    def timeout(self) -> float:
        value = self.config.get("timeout")
        return 30.0 if value is None else float(value)
