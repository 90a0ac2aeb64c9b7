"""The outputs of a dynamic block's children, reduced to one list (``--reduce-output``).

A Python block that reduces gets the list itself.  A destination that reduces writes every
child's stream into one table per stream: the children's batches are appended, in item order,
to one Arrow stream file per stream (bounded memory: batch by batch, columns aligned to the
union of the children's schemas), optionally with a column naming the child
(``child_column: tenant`` at the top of the destination's YAML).  That column then joins the
stream's keys, since two tenants may well both have an order 1.

The children's bookmarks are not committed with these rows: they advance when the whole run
succeeded (as for a source read only by Python blocks), so a failed run re-reads from the old
bookmarks and the destination upserts what it sees again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from ..errors import ConfigError
from . import safe_yaml
from .inputs import IncomingStream, streams_from_output
from .outputs import StreamOutput, source_output
from .replica import dump_yaml

CHILD_COLUMN = "child_column"


class ReducedOutput(list):
    """The children's outputs in item order; ``names`` are the children's names (``sync:t1``)."""

    def __init__(self, names: Iterable[str], outputs: Iterable[Any]) -> None:
        super().__init__(outputs)
        self.names = list(names)


def pop_child_column(body: str, *, block: str) -> tuple[str, str | None]:
    """A destination body without its ``child_column:`` key, and the column it names."""
    if CHILD_COLUMN not in body:
        return body, None
    try:
        data = safe_yaml.load(body)
    except yaml.YAMLError:
        return body, None  # the destination reports the broken YAML itself
    if not isinstance(data, dict) or CHILD_COLUMN not in data:
        return body, None
    column = data.pop(CHILD_COLUMN)
    if column is not None and (not isinstance(column, str) or not column.strip()):
        raise ConfigError(f"`{CHILD_COLUMN}` must be a column name, not {column!r}.", block=block)
    return dump_yaml(data), column


def _aligned(batch: pa.RecordBatch, schema: pa.Schema, child: str, child_column: str | None) -> pa.RecordBatch:
    columns = []
    for f in schema:
        if child_column is not None and f.name == child_column:
            columns.append(pa.array([child] * batch.num_rows, pa.string()))
        elif f.name in batch.schema.names:
            columns.append(batch.column(batch.schema.get_field_index(f.name)).cast(f.type))
        else:
            columns.append(pa.nulls(batch.num_rows, f.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _stream_info(info: dict[str, Any], child_column: str | None) -> dict[str, Any]:
    info = dict(info)
    if child_column is not None:
        for key in ("key_properties", "unique_constraints"):
            if info.get(key):
                info[key] = [child_column, *[k for k in info[key] if k != child_column]]
    return info


def reduced_for_destination(upstream: str, reduced: ReducedOutput, *, child_column: str | None, work_dir: Path, block: str) -> Any:
    """One stream per stream name holding every child's rows (a source output a destination takes)."""
    by_stream: dict[str, list[tuple[str, IncomingStream]]] = {}
    for child, output in zip(reduced.names, reduced):
        for stream in streams_from_output(upstream, output):
            by_stream.setdefault(stream.name, []).append((child, stream))
    folder = work_dir / "reduced" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    outputs: list[StreamOutput] = []
    for index, (name, parts) in enumerate(by_stream.items()):
        schemas = [stream.schema for _, stream in parts]
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ConfigError(
                f"the children of {upstream!r} give stream {name!r} incompatible columns: {exc}", block=block, stream=name
            ) from None
        if child_column is not None:
            if child_column in schema.names:
                raise ConfigError(
                    f"child_column {child_column!r} is already a column of stream {name!r}.",
                    block=block,
                    stream=name,
                    fix="name another column in child_column.",
                )
            schema = schema.append(pa.field(child_column, pa.string(), nullable=False))
        path = folder / f"{index}.arrow"
        rows = 0
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for child, stream in parts:
                for batch in stream.reader():
                    writer.write_batch(_aligned(batch, schema, child, child_column))
                    rows += batch.num_rows
        info = _stream_info(parts[0][1].stream_info or {"stream": name, "tap_stream_id": name}, child_column)
        outputs.append(StreamOutput(info, path, schema, rows))
    if not outputs:
        return None
    return source_output(outputs)
