"""SQL identifiers for the embedded SQL databases (DuckDB, SQLite): always quoted.

Why: a column named ``x" int); create table pwned(x int); --`` must stay a column, so every
identifier goes through :func:`quote_ident` (embedded quotes doubled), never into SQL as is.
"""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier with embedded quotes doubled (any name is safe)."""
    return '"' + str(name).replace('"', '""') + '"'


def qualify(schema: str | None, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)
