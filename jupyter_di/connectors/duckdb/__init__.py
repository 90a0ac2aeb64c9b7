"""The ``duckdb`` connector: one DuckDB database file as a source and a destination.

Why Arrow end to end: DuckDB scans a registered Arrow stream natively, so the destination writes
a commit window with one set-based ``INSERT ... SELECT`` and no Python per row (``write.py``), and
the source streams ``con.sql(...).to_arrow_reader()`` (``read.py``).  The shared SQL shapes and
the transactional write loop are in ``connectors/_shared/``.

Timestamps with a time zone are read in UTC (the session time zone is set to UTC).  DuckDB
compares identifiers case-insensitively, so two columns that differ only in case cannot live in
one table.
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .connection import CONFIG
from .read import DuckDBSource
from .write import DuckDBDestination

SPEC = ConnectorSpec(
    name="duckdb",
    title="DuckDB",
    config_schema=CONFIG,
    source=DuckDBSource,
    destination=DuckDBDestination,
    description="A DuckDB database file: tables stream out as Arrow; writes are set-based and transactional.",
)

__all__ = ["SPEC", "DuckDBSource", "DuckDBDestination"]
