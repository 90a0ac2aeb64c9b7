"""Connectors: one module per system, a Singer adapter, and an entry-point registry."""
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
