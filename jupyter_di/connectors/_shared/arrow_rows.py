"""Arrow helpers for sources that cannot push work into a query engine.

Why here: the files and http_api connectors both hold rows that no database
filters or orders for them, so column selection, the inclusive incremental
filter, the (bookmark, key) ordering, limits and casting batches to a fixed
schema are done in Arrow, once, in this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...errors import ConfigError, SchemaMismatch
from ..base import StreamSettings, is_json_field
from ..catalog import check_replication_keys


def normalize_type(data_type: pa.DataType) -> pa.DataType:
    """Our conventions: timestamps in microseconds, all-null columns as strings."""
    if pa.types.is_timestamp(data_type) and data_type.unit != "us":
        return pa.timestamp("us", tz=data_type.tz)
    if pa.types.is_null(data_type):
        return pa.string()
    return data_type


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(normalize_type(f.type)) for f in schema], metadata=schema.metadata)


def selected_schema(schema: pa.Schema, columns: list[str] | None, stream: str) -> pa.Schema:
    """The selected columns, in the stream's own column order."""
    if columns is None:
        return schema
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ConfigError(
            f"column(s) {', '.join(repr(c) for c in missing)} do not exist in the stream.",
            stream=stream,
            fix=f"choose from: {', '.join(schema.names)}.",
        )
    wanted = set(columns)
    return pa.schema([f for f in schema if f.name in wanted])


def cast_column(array: pa.Array | pa.ChunkedArray, field: pa.Field, stream: str | None) -> Any:
    """``array`` as ``field.type``; lossy casts raise a SchemaMismatch naming the column."""
    if array.type == field.type:
        return array
    try:
        if pa.types.is_timestamp(array.type) and pa.types.is_timestamp(field.type):
            return array.cast(field.type, safe=False)
        return array.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatch(
            f"column {field.name!r} holds {array.type} values that do not fit its type {field.type} ({exc}).",
            stream=stream,
            fix="make the column's values consistent, or write to a new table/file.",
        ) from None


def conform(batch: pa.RecordBatch | pa.Table, schema: pa.Schema, stream: str | None) -> pa.RecordBatch:
    """``batch`` with exactly ``schema``'s columns: reordered, cast, missing ones NULL."""
    columns = []
    for field in schema:
        idx = batch.schema.get_field_index(field.name)
        if idx < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
        else:
            col = batch.column(idx)
            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            columns.append(cast_column(col, field, stream))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _bookmark_scalar(value: Any, field: pa.Field, stream: str) -> pa.Scalar:
    """A JSON bookmark value (ISO strings for timestamps, strings for decimals) as the column's type."""
    try:
        if isinstance(value, str) and not pa.types.is_string(field.type) and not pa.types.is_large_string(field.type):
            return pa.array([value], pa.string()).cast(field.type)[0]
        return pa.array([value]).cast(field.type)[0]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise ConfigError(
            f"bookmark value {value!r} for {field.name!r} does not fit the column type {field.type}.",
            stream=stream,
            fix="edit or reset the stream's bookmark.",
        ) from None


def check_columns_exist(schema: pa.Schema, names: list[str], what: str, stream: str) -> None:
    for name in names:
        if name not in schema.names:
            raise ConfigError(
                f"{what} column {name!r} does not exist in the stream.",
                stream=stream,
                fix=f"choose from: {', '.join(schema.names)}.",
            )


def at_or_after(rows: pa.Table | pa.RecordBatch, values: list[tuple[str, Any]], stream: str) -> Any:
    """The mask of rows whose (columns) >= (values), the SQL row comparison; False where NULL."""
    mask = None
    # (b1, b2, ...) >= (v1, v2, ...) built from the last property outwards.
    for name, value in reversed(values):
        col = rows.column(name)
        scalar = _bookmark_scalar(value, rows.schema.field(name), stream)
        if mask is None:
            mask = pc.greater_equal(col, scalar)
        else:
            mask = pc.or_(pc.greater(col, scalar), pc.and_(pc.equal(col, scalar), mask))
    return pc.fill_null(mask, False)


def order_incremental(
    table: pa.Table, settings: StreamSettings, bookmark: dict[str, Any] | None, stats: dict[str, Any] | None = None
) -> pa.Table:
    """Rows with (bookmark props) >= bookmark, sorted by bookmark props then keys.

    The comparison is the SQL row comparison: lexicographic over the bookmark
    properties; rows whose bookmark columns are NULL are dropped when a bookmark
    is given (counted into ``stats["null_cursor_rows"]``; kept with ``null_cursor:
    resync``) and sort last otherwise (as PostgreSQL orders NULLs).
    """
    stream = settings.stream
    props = list(settings.bookmark_properties)
    keys = [k for k in settings.key_properties if k not in props]
    check_columns_exist(table.schema, props, "bookmark", stream)
    check_columns_exist(table.schema, keys, "key", stream)
    if bookmark:
        values = [(p, bookmark[p]) for p in props if p in bookmark and bookmark[p] is not None]
        if values:
            mask = at_or_after(table, values, stream)
            any_null: Any = None  # a pyarrow BooleanArray (pyarrow is untyped) once props is not empty
            for name in props:
                null = pc.is_null(table.column(name))
                any_null = null if any_null is None else pc.or_(any_null, null)
            if settings.null_cursor == "resync":
                mask = pc.or_(mask, any_null)
            elif stats is not None:
                stats["null_cursor_rows"] = int(stats.get("null_cursor_rows") or 0) + int(pc.sum(any_null.cast(pa.int64())).as_py() or 0)
            table = table.filter(mask)
    order = props + keys
    if order:
        table = table.sort_by([(name, "ascending") for name in order])
    return table


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int, limit: int | None) -> Iterator[pa.RecordBatch]:
    """Split batches to at most ``batch_size`` rows and stop after ``limit`` rows."""
    remaining = limit
    size = max(1, batch_size)
    for batch in batches:
        for start in range(0, batch.num_rows, size):
            piece = batch.slice(start, size)
            if remaining is not None:
                if remaining <= 0:
                    return
                piece = piece.slice(0, remaining)
                remaining -= piece.num_rows
            if piece.num_rows:
                yield piece
        if remaining is not None and remaining <= 0:
            return


def orderable(field: pa.Field) -> bool:
    """Columns a bookmark can be kept on (no JSON, nested, binary or boolean columns)."""
    t = field.type
    if is_json_field(field) or pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_boolean(t):
        return False
    return True


def check_bookmark_orderable(schema: pa.Schema, bookmark_properties: list[str], stream: str) -> None:
    """One clear error for a bookmark on a column records cannot be ordered by."""
    check_replication_keys(bookmark_properties, [f.name for f in schema if orderable(f)], {f.name: str(f.type) for f in schema}, stream)
