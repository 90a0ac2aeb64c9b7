"""Connectors: the contract every source and destination implements, and one package per system.

The top-level modules are what every connector shares: ``base.py`` (the contract), ``registry.py``
(lookup by name, entry points), ``catalog.py`` (the Singer catalog vocabulary) and
``config_check.py``.  Each system is a package (``postgres/``, ``duckdb/``, ``sqlite/``,
``files/``, ``http_api/``, ``singer/``) whose ``__init__`` exposes ``SPEC``; ``_shared/`` holds
private helpers several of them use.  A package never imports another system's package
(``tests/test_layers.py``); docs/connectors.md says how to add one.
"""

from .base import (
    Chunk,
    ConfigField,
    ConnectorSpec,
    Destination,
    ReadRequest,
    Source,
    StreamSettings,
    WriteRequest,
    WriteResult,
)

__all__ = [
    "Chunk",
    "ConfigField",
    "ConnectorSpec",
    "Destination",
    "ReadRequest",
    "Source",
    "StreamSettings",
    "WriteRequest",
    "WriteResult",
]
