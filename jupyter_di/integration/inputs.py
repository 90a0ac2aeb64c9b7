"""Turning any upstream output into streams a destination can export.

A destination exports every upstream that is not input-only: pandas and polars
DataFrames, Arrow tables, lists of dicts, the spec's ``{stream, columns, rows}``
dicts and source outputs (each of their streams).  Plain outputs become a
stream named after the upstream block; source outputs keep their stream names
and carry their origin (source block, bookmark states) so the destination can
commit the source's bookmark with the rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from ..connectors.base import json_field
from ..connectors.catalog import catalog_entry_for_arrow
from ..errors import ConfigError
from .di_config import UpstreamSettings
from .outputs import LiveSourceOutput, SourceOutput, StreamOutput


@dataclass
class InputStream:
    name: str
    reader: Callable[[], pa.RecordBatchReader]
    schema: pa.Schema
    num_rows: int | None = None
    origin: dict[str, Any] = field(default_factory=dict)
    stream_info: dict[str, Any] = field(default_factory=dict)


class IncomingStream(Protocol):
    """What a destination reads of an upstream stream: an ``InputStream`` or a ``LiveInputStream``."""

    @property
    def name(self) -> str: ...
    @property
    def reader(self) -> Callable[[], pa.RecordBatchReader]: ...
    @property
    def schema(self) -> pa.Schema: ...
    @property
    def num_rows(self) -> int | None: ...
    @property
    def origin(self) -> dict[str, Any]: ...
    @property
    def stream_info(self) -> dict[str, Any]: ...


def _nested_to_json(table: pa.Table) -> pa.Table:
    """Struct/map/list-of-nested columns become JSON text columns marked as JSON.

    Also normalises ``large_string`` (pandas' default string dtype) to ``string``
    so every destination sees one string type.
    """
    for i, f in enumerate(table.schema):
        t = f.type
        if pa.types.is_large_string(t):
            table = table.set_column(i, pa.field(f.name, pa.string(), metadata=f.metadata), table.column(i).cast(pa.string()))
            continue
        nested = (
            pa.types.is_struct(t)
            or pa.types.is_map(t)
            or (
                (pa.types.is_list(t) or pa.types.is_large_list(t))
                and (pa.types.is_struct(t.value_type) or pa.types.is_list(t.value_type) or pa.types.is_null(t.value_type))
            )
        )
        if not nested:
            continue
        values = [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in table.column(i).to_pylist()]
        table = table.set_column(i, json_field(f.name), pa.array(values, pa.string()))
    return table


def _object_columns_to_json(df) -> tuple[Any, list[str]]:
    """pandas object columns holding dicts/lists: serialise to JSON so Arrow gets text."""
    out, json_columns = df, []
    for col in df.columns:
        if df[col].dtype == object:
            sample = df[col].dropna().head(50)
            if len(sample) and all(isinstance(v, (dict, list)) for v in sample):
                if out is df:
                    out = df.copy()
                out[col] = df[col].map(lambda v: None if v is None else json.dumps(v, default=str, ensure_ascii=False))
                json_columns.append(str(col))
    return out, json_columns


def table_from_output(value: Any, *, block: str) -> pa.Table | None:
    """An Arrow table for a plain (non-source) block output; None when not tabular."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pd = None
    if isinstance(value, pa.Table):
        return _nested_to_json(value)
    if isinstance(value, pa.RecordBatch):
        return _nested_to_json(pa.Table.from_batches([value]))
    if pd is not None and isinstance(value, pd.DataFrame):
        df, json_columns = _object_columns_to_json(value)
        table = pa.Table.from_pandas(df, preserve_index=False)
        for name in json_columns:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, json_field(name), table.column(i).cast(pa.string()))
        return _nested_to_json(table.replace_schema_metadata(None))
    if type(value).__module__.startswith("polars") and hasattr(value, "to_arrow"):
        return _nested_to_json(value.to_arrow())
    if isinstance(value, Mapping) and set(value.keys()) >= {"columns", "rows"}:
        columns = list(value["columns"])
        rows = value["rows"]
        data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
        return _nested_to_json(pa.table(data))
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return _nested_to_json(pa.Table.from_pylist([dict(v) for v in value]))
    if isinstance(value, list) and not value:
        return None
    return None


def streams_from_output(block: str, value: Any) -> list[IncomingStream]:
    """Every stream an upstream block's output contributes to a destination."""
    if isinstance(value, StreamOutput):
        return [_from_stream_output(value)]
    if isinstance(value, LiveSourceOutput):
        return [_from_live(live) for live in value.streams]
    if isinstance(value, SourceOutput) or (isinstance(value, list) and value and all(isinstance(v, StreamOutput) for v in value)):
        return [_from_stream_output(v) for v in value]
    if value is None:
        return []
    table = table_from_output(value, block=block)
    if table is None:
        raise ConfigError(
            f"the output of block {block!r} ({type(value).__name__}) cannot be exported.",
            block=block,
            fix="return a pandas/polars DataFrame, an Arrow table, a list of dicts or a source output; or mark it only_as_input.",
        )
    return [
        InputStream(
            name=block,
            reader=lambda: pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=65_536)),
            schema=table.schema,
            num_rows=table.num_rows,
            stream_info=catalog_entry_for_arrow(block, table.schema),
        )
    ]


def _from_stream_output(out: StreamOutput) -> InputStream:
    return InputStream(
        name=out.name, reader=out.reader, schema=out.schema, num_rows=out.num_rows, origin=out.origin, stream_info=out["stream"]
    )


class LiveInputStream:
    """An ``InputStream`` of a running source block: its schema and catalog entry are known once the
    source has opened the stream, so they are waited for on first use, not when the destination starts
    (a destination then writes a serial source's first stream while the source reads its next)."""

    num_rows = None

    def __init__(self, live: Any) -> None:
        self.name = live.stream
        self.reader = live.reader
        self.origin = live.origin
        self._live = live

    @property
    def schema(self) -> pa.Schema:
        return self._live.wait_started()[0]

    @property
    def handoff(self) -> Any:
        """The stream's offer to pass it through (``pass_through.py``), or None."""
        return self._live.handoff

    @property
    def stream_info(self) -> dict[str, Any]:
        return self._live.wait_started()[1]


def _from_live(live: Any) -> LiveInputStream:
    return LiveInputStream(live)


def catalog_for_output(block: str, value: Any) -> dict[str, Any]:
    """The catalog of an upstream output (the spec's "use the block's catalog as an input")."""
    if isinstance(value, StreamOutput):
        return {"streams": [value["stream"]]}
    if isinstance(value, list) and value and all(isinstance(v, StreamOutput) for v in value):
        return {"streams": [v["stream"] for v in value]}
    return {"streams": [s.stream_info for s in streams_from_output(block, value)]}


def apply_upstream_settings(names: list[str], outputs: list[Any], settings: Mapping[str, UpstreamSettings]) -> tuple[list[str], list[Any]]:
    """Inputs per the spec's upstream options: the data, the catalog, or a (data, catalog) tuple."""
    kept_names: list[str] = []
    kept: list[Any] = []
    for name, value in zip(names, outputs):
        opts = settings.get(name, UpstreamSettings())
        if opts.use_output_as_input and opts.use_catalog_as_input:
            kept.append((value, catalog_for_output(name, value)))
        elif opts.use_catalog_as_input:
            kept.append(catalog_for_output(name, value))
        elif opts.use_output_as_input:
            kept.append(value)
        else:
            continue
        kept_names.append(name)
    return kept_names, kept
