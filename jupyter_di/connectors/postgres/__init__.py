"""The ``postgresql`` connector: source and destination for PostgreSQL.

Data moves as Arrow over binary COPY through adbc-driver-postgresql (see
read.py and write.py for why); catalog queries and small
statements use psycopg.  Config: host, port, database, username, password
(secret), schema, sslmode, connect_timeout.
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .connection import CONFIG_SCHEMA
from .read import PostgresSource
from .write import PostgresDestination

PostgresSource.config_schema = CONFIG_SCHEMA
PostgresDestination.config_schema = CONFIG_SCHEMA

SPEC = ConnectorSpec(
    name="postgresql",
    title="PostgreSQL",
    config_schema=CONFIG_SCHEMA,
    source=PostgresSource,
    destination=PostgresDestination,
    description="Reads and writes PostgreSQL tables as Arrow over binary COPY; upserts and bookmarks commit in one transaction.",
)

__all__ = ["SPEC", "PostgresSource", "PostgresDestination"]
