"""The ``salesforce`` connector: streams into sObjects, upserted on an external ID field.

``connection.py`` holds the config, the OAuth log-in flows and the HTTP client; ``fields.py`` maps
columns to fields against one ``describe``; ``values.py`` checks and converts values; ``paths.py``
sends them through sObject Collections or Bulk API 2.0; ``write.py`` is the ``Destination``.
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .connection import CONFIG_SCHEMA
from .write import SalesforceDestination

SPEC = ConnectorSpec(
    name="salesforce",
    title="Salesforce",
    config_schema=CONFIG_SCHEMA,
    destination=SalesforceDestination,
    description="Upserts streams into sObjects on an external ID: sObject Collections for small loads, Bulk API 2.0 for large ones.",
)

__all__ = ["SPEC", "SalesforceDestination"]
