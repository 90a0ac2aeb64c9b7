"""What a source block hands to downstream blocks: the spec's shape, made lazy.

Per the spec, one stream gives a dict ``{stream, columns, rows}`` and two or
more give a list of them.  ``StreamOutput`` *behaves* as that dict, but its
data stays in a memory-mapped Arrow file until asked for: ``rows`` builds the
list of lists on first access, ``to_arrow()`` is zero-copy, ``to_pandas()``
converts once, and the notebook shows a DataFrame preview.
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from ..sync.spill import open_reader, read_table

KEYS = ("stream", "columns", "rows")


class StreamOutput(Mapping):
    """One fetched stream: ``out['stream']``, ``out['columns']``, ``out['rows']``."""

    def __init__(
        self,
        stream: dict[str, Any],
        path: Path,
        schema: pa.Schema,
        num_rows: int,
        *,
        origin: dict[str, Any] | None = None,
    ) -> None:
        self._stream = stream
        self._path = Path(path)
        self._schema = schema
        self.num_rows = num_rows
        self.origin = origin or {}
        self._rows: list[list[Any]] | None = None

    # -- the spec's dict --------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key == "stream":
            return self._stream
        if key == "columns":
            return list(self._schema.names)
        if key == "rows":
            if self._rows is None:
                table = self.to_arrow()
                columns = [col.to_pylist() for col in table.columns]
                self._rows = [list(row) for row in zip(*columns)] if columns else []
            return self._rows
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(KEYS)

    def __len__(self) -> int:
        return len(KEYS)

    @property
    def name(self) -> str:
        return self._stream.get("stream", "")

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    # -- lazy data access ---------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        return read_table(self._path)

    def to_pandas(self):  # -> pandas.DataFrame
        return self.to_arrow().to_pandas()

    def reader(self) -> pa.RecordBatchReader:
        return open_reader(self._path)

    def head(self, n: int = 10):
        table = self.to_arrow().slice(0, n)
        return table.to_pandas()

    def __repr__(self) -> str:
        return f"<StreamOutput {self.name!r}: {self.num_rows} rows x {len(self._schema)} columns>"

    def _repr_html_(self) -> str:
        from ..settings import current_preview_rows

        n = current_preview_rows()
        title = f"<b>{html.escape(self.name)}</b>: {self.num_rows:,} rows × {len(self._schema)} columns"
        preview = self.head(n).to_html(max_rows=n, index=False, border=0)
        more = f"<br><small>showing the first {min(n, self.num_rows)} rows</small>" if self.num_rows > n else ""
        return f"<div class='jupyter-di-stream'>{title}{preview}{more}</div>"


class SourceOutput(list):
    """Two or more streams: a plain list of ``StreamOutput`` (spec shape), with a preview."""

    def stream(self, name: str) -> StreamOutput:
        for item in self:
            if item.name == name:
                return item
        raise KeyError(name)

    def _repr_html_(self) -> str:
        return "".join(item._repr_html_() for item in self)


def source_output(streams: list[StreamOutput]) -> StreamOutput | SourceOutput:
    """The spec's rule: a dict for one stream, a list for two or more."""
    if len(streams) == 1:
        return streams[0]
    return SourceOutput(streams)
