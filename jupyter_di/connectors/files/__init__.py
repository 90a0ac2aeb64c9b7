"""The ``files`` connector: local files as a source and a destination, one file per stream in one folder.

Why this shape: a folder of ``<stream>.<ext>`` files is the simplest interchange a notebook user
has (CSV from a spreadsheet, JSON Lines from a log, Parquet from another tool).  The source
streams each file with bounded memory (``read.py``); the destination writes
``<folder>/<table>.<ext>`` (``write.py`` says what survives a crash).  Every path goes through
``paths.py``, so no stream name can leave the folder; ``formats.py`` reads and writes each format.
"""

from __future__ import annotations

from ..base import ConnectorSpec
from .formats import CONFIG_SCHEMA
from .read import FilesSource
from .write import FilesDestination

SPEC = ConnectorSpec(
    name="files",
    title="Local files (CSV, JSON Lines, Parquet)",
    config_schema=CONFIG_SCHEMA,
    source=FilesSource,
    destination=FilesDestination,
    description="One file per stream in a local folder: <folder>/<stream>.<csv|jsonl|parquet>.",
)

__all__ = ["SPEC", "FilesSource", "FilesDestination"]
