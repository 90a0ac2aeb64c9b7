"""The ``trino`` connector: a destination that loads into any catalog of a Trino coordinator.

Rows go through the ``trino`` client (``pip install 'jupyter-di[trino]'``) as ``INSERT ... SELECT
FROM UNNEST`` statements into a staging table, several at once, then one statement publishes them
(``CREATE OR REPLACE TABLE`` / ``RENAME`` for FULL_TABLE, ``MERGE`` for keyed INCREMENTAL streams,
``INSERT ... SELECT`` otherwise); see write.py.  Config: host, port, user, catalog, schema,
http_scheme, password or jwt (secrets, HTTPS only), verify, session_properties, and the load knobs.
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .connection import CONFIG_SCHEMA
from .write import TrinoDestination

TrinoDestination.config_schema = CONFIG_SCHEMA

SPEC = ConnectorSpec(
    name="trino",
    title="Trino",
    config_schema=CONFIG_SCHEMA,
    destination=TrinoDestination,
    description="Loads typed tables into a Trino catalog (Iceberg, Delta Lake, Hive, memory ...); FULL_TABLE swaps a staging table in, keyed INCREMENTAL streams MERGE.",
)

__all__ = ["SPEC", "TrinoDestination"]
