"""The ``sqlite`` connector: one SQLite database file (stdlib ``sqlite3``) as a source and a destination.

SQLite has no column types, only declared types, so the declared type is the schema
(``types.py``).  The destination uses WAL mode (readers never block the writer, a crash rolls back
to the last commit) and ``BEGIN IMMEDIATE`` so a locked file is reported before any work.
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .connection import CONFIG
from .read import SQLiteSource
from .write import SQLiteDestination

SPEC = ConnectorSpec(
    name="sqlite",
    title="SQLite",
    config_schema=CONFIG,
    source=SQLiteSource,
    destination=SQLiteDestination,
    description="A SQLite database file (stdlib sqlite3): typed by declared column types; transactional writes in WAL mode.",
)

__all__ = ["SPEC", "SQLiteSource", "SQLiteDestination"]
