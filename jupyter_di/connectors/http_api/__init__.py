"""The ``http_api`` connector: the endpoints of a JSON HTTP API as a source.

``read.py`` infers each stream's schema and reads it (lazily, or sorted for INCREMENTAL),
``paging.py`` walks the pages of each paging style; the requests go through the shared
``_shared/http_client.py`` (retries, credentials that never follow a redirect to another host).
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .read import CONFIG_SCHEMA, HttpApiSource

SPEC = ConnectorSpec(
    name="http_api",
    title="HTTP JSON API",
    config_schema=CONFIG_SCHEMA,
    source=HttpApiSource,
    description="Reads JSON endpoints of a REST API, with paging, retries and an incremental cursor.",
)

__all__ = ["SPEC", "HttpApiSource"]
