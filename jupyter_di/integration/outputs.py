"""What a source block hands to downstream blocks: the spec's shape, made lazy.

Per the spec, one stream gives a dict ``{stream, columns, rows}`` and two or
more give a list of them.  ``StreamOutput`` *is* that dict, but its
data stays in a memory-mapped Arrow file until asked for: ``rows`` builds the
list of lists on first access, ``to_arrow()`` is zero-copy, ``to_pandas()``
converts once, and the notebook shows a DataFrame preview.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..sync.live_spill import LiveSpill
from ..sync.spill import open_reader, read_table

KEYS = ("stream", "columns", "rows")


class _Lazy:
    """Placeholder for ``rows`` in the dict's own storage until they are first needed."""

    def __repr__(self) -> str:
        return "<rows not loaded>"


_LAZY_ROWS = _Lazy()


class StreamOutput(dict):
    """One fetched stream: ``out['stream']``, ``out['columns']``, ``out['rows']``.

    A real ``dict`` (the spec says a dictionary, and code written for it checks
    ``isinstance(output, dict)`` to tell one stream from a list of them) whose
    ``rows`` are built from the spill file on first access, through any path:
    indexing, ``get``, ``items``/``values``, ``dict(out)``, ``==``, ``json.dumps``.
    """

    def __init__(
        self,
        stream: dict[str, Any],
        path: Path,
        schema: pa.Schema,
        num_rows: int,
        *,
        origin: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(stream=stream, columns=list(schema.names), rows=_LAZY_ROWS)
        self._path = Path(path)
        self._schema = schema
        self.num_rows = num_rows
        self.origin = origin or {}

    # -- the spec's dict, with lazy rows ------------------------------------------------
    def _load_rows(self) -> None:
        if dict.get(self, "rows") is _LAZY_ROWS:
            table = self.to_arrow()
            columns = [col.to_pylist() for col in table.columns]
            dict.__setitem__(self, "rows", [list(row) for row in zip(*columns)] if columns else [])

    def __getitem__(self, key: str) -> Any:
        if key == "rows":
            self._load_rows()
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def __iter__(self) -> Iterator[str]:
        # Overriding __iter__ makes dict(out) / {**out} go through keys() and __getitem__.
        return dict.__iter__(self)

    def items(self):  # noqa: ANN201 - dict's own view type
        self._load_rows()
        return dict.items(self)

    def values(self):  # noqa: ANN201
        self._load_rows()
        return dict.values(self)

    def copy(self) -> dict[str, Any]:
        self._load_rows()
        return dict(dict.items(self))

    def pop(self, key: str, *default: Any) -> Any:
        self._load_rows()
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._load_rows()
        return dict.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._load_rows()
        return dict.setdefault(self, key, default)

    def __eq__(self, other: object) -> bool:
        self._load_rows()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._load_rows()
        return dict.__ne__(self, other)

    __hash__ = None

    def __reduce__(self):  # noqa: ANN204 - pickles as the plain spec dict
        return (dict, (self.copy(),))

    @property
    def name(self) -> str:
        return dict.__getitem__(self, "stream").get("stream", "")

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


class PassedThrough(StreamOutput):
    """A stream its one reader, a destination block, wrote straight from the source server
    (``pass_through.py``): counted, never kept.  Only a run in which nothing else reads the source
    block's output hands a stream over (``pipeline/fusion.py``), so its rows are asked for only by
    mistake, and that is said instead of showing nothing."""

    def __init__(self, stream: dict[str, Any], schema: pa.Schema, num_rows: int, *, reader: str, origin: dict[str, Any]) -> None:
        super().__init__(stream, Path("/nonexistent"), schema, num_rows, origin=origin)
        self.written_by = reader

    def _gone(self) -> Exception:
        from ..errors import ConfigError

        return ConfigError(
            f"the rows of stream {self.name!r} went straight into block {self.written_by!r} (binary COPY pass-through) and were not kept.",
            stream=self.name,
            fix="read them from the destination table, or run the notebook in a kernel, where outputs are kept.",
        )

    def to_arrow(self) -> pa.Table:
        raise self._gone()

    def reader(self) -> pa.RecordBatchReader:
        raise self._gone()

    def _repr_html_(self) -> str:
        return f"<div class='jupyter-di-stream'><b>{html.escape(self.name)}</b>: {self.num_rows:,} rows, written into {html.escape(self.written_by)}</div>"


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


class LiveSourceOutput:
    """A running source block's streams, for destination blocks that write while it reads.

    Only destination blocks see it (Python blocks wait for the finished
    output); each stream is read from its spill file as the source writes it.
    """

    def __init__(self, block: str, streams: list[LiveSpill]) -> None:
        self.block = block
        self.streams = streams

    def __repr__(self) -> str:
        return f"<LiveSourceOutput of {self.block!r}: {', '.join(s.stream for s in self.streams)} (still reading)>"
