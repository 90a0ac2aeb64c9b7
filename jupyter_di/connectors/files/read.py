"""The files source: every ``<stream>.<ext>`` file of the folder is a stream, read with bounded memory.

INCREMENTAL reads of a file: no engine can filter or order a file for us, so
the whole file is read into Arrow, filtered by the inclusive bookmark and
sorted by (bookmark, key) before the first batch is yielded.  Memory is then
the file's size in Arrow, not one batch; FULL_TABLE reads stay streaming.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ...errors import ConfigError
from .._shared.arrow_rows import (
    check_bookmark_orderable,
    check_columns_exist,
    order_incremental,
    orderable,
    rebatch,
    selected_schema,
)
from ..base import INCREMENTAL, ReadRequest, Source, is_json_field
from ..catalog import json_schema_for_arrow, stream_entry
from .formats import CONFIG_SCHEMA, file_options, infer_schema, iter_batches
from .paths import extension, root_folder, table_path


class FilesSource(Source):
    """Reads every ``*.<ext>`` file of the folder as a stream named after the file."""

    name = "files"
    config_schema = CONFIG_SCHEMA

    @staticmethod
    def check_config(config: dict[str, Any]) -> None:
        """What the field types cannot say (``connectors/config_check.py`` calls it before connecting)."""
        delimiter = config.get("delimiter")
        if delimiter is not None and len(delimiter) != 1:
            raise ConfigError(
                f"config 'delimiter' must be one character (got {delimiter[:20]!r}).", fix="e.g. delimiter: ';' or delimiter: \"\\t\"."
            )

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.opts = file_options(config)

    @property
    def root(self) -> Path:
        return root_folder(self.config.get("path"), create=False)

    def check(self) -> None:
        self.root  # noqa: B018 - raises ConfigError when the folder is missing

    def stream_names(self) -> list[str]:
        ext = extension(self.opts.format)
        root = self.root
        names = []
        for p in root.iterdir():
            if p.is_file() and p.name.endswith(ext) and not p.name.startswith(".") and len(p.name) > len(ext):
                try:
                    table_path(root, p.name[: -len(ext)], self.opts.format)
                except ConfigError:
                    continue  # e.g. a symlink out of the folder: never a stream
                names.append(p.name[: -len(ext)])
        return sorted(names)

    def _path(self, stream: str) -> Path:
        path = table_path(self.root, stream, self.opts.format)
        if not path.is_file():
            raise ConfigError(
                f"no file {path.name!r} in {str(self.root)!r}.",
                stream=stream,
                fix=f"pick one of the streams: {', '.join(self.stream_names()) or '(folder has no such files)'}.",
            )
        return path

    def discover(self, streams: list[str] | None = None) -> dict[str, Any]:
        entries = []
        for stream in self.stream_names():
            if streams is not None and stream not in streams:
                continue
            schema = infer_schema(self._path(stream), self.opts)
            entries.append(
                stream_entry(
                    stream,
                    {f.name: json_schema_for_arrow(f.type, f) for f in schema},
                    key_properties=[],
                    valid_replication_keys=[f.name for f in schema if orderable(f)],
                    sql_datatypes={f.name: "json" if is_json_field(f) else str(f.type) for f in schema},
                    extra_stream_metadata={"file-format": self.opts.format},
                )
            )
        return {"streams": entries}

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        settings = request.settings
        stream = settings.stream
        path = self._path(stream)
        schema = infer_schema(path, self.opts)
        out_schema = selected_schema(schema, settings.columns, stream)
        incremental = settings.replication_method == INCREMENTAL
        if incremental:
            check_columns_exist(schema, list(settings.bookmark_properties), "bookmark", stream)
            check_bookmark_orderable(schema, list(settings.bookmark_properties), stream)
            check_columns_exist(schema, list(settings.key_properties), "key", stream)

        def batches() -> Iterator[pa.RecordBatch]:
            if incremental:
                table = pa.Table.from_batches(iter_batches(path, self.opts, schema, request.batch_size, stream), schema=schema)
                table = order_incremental(table, settings, request.bookmark, request.stats).select(out_schema.names)
                source = table.to_batches(max_chunksize=request.batch_size)
            else:
                source = iter_batches(path, self.opts, out_schema, request.batch_size, stream)
            yield from rebatch(source, request.batch_size, request.limit)

        return pa.RecordBatchReader.from_batches(out_schema, batches())
