"""A commit window of a change stream reduced to set-based steps a SQL destination can run.

Why: applying changes one by one costs a statement per change; a window of changes reduces, per key,
to its last effect, and effects on distinct keys commute.  So each window becomes, between its
truncates, one upsert of full rows, a few updates of some columns for some keys, and one delete of
keys, which every SQL engine runs as a handful of statements.  The reduction is exact: it folds each
key's changes in commit order, exactly as applying them one by one would.

- ``insert`` / ``update``: the row is upserted on the key.  An update that lists columns as unchanged
  (PostgreSQL's unchanged TOASTed values) takes them from an earlier change of the window, else it
  becomes an update of only the columns it has (the destination keeps its values for the others).
- ``delete``: hard, the key's row is deleted; soft, ``DELETED_AT_COLUMN`` is set to the commit time
  (with the row's last values when the window had them, so a row inserted and deleted within one
  window is still recorded as deleted).  Every upsert sets it back to NULL.
- ``truncate``: hard, the table is emptied; soft, every live row is marked.  In hard mode the changes
  before a window's last truncate are dropped (the truncate erases them anyway).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import SchemaMismatch
from ..base import CHANGE_COLUMNS, CHANGE_OP_COLUMN, CHANGE_TIME_COLUMN, CHANGE_UNCHANGED_COLUMN, DELETED_AT_COLUMN, StreamSettings
from .arrow_build import int64_array, numpy_values, text_array

log = logging.getLogger(__name__)

DELETED_AT_TYPE = pa.timestamp("us", tz="UTC")
DELETED_AT_FIELD = pa.field(DELETED_AT_COLUMN, DELETED_AT_TYPE)


@dataclass
class ChangeStep:
    """What one stretch of a window does, in this order: truncate, delete, update, upsert."""

    truncate: bool = False
    mark_time: pa.Array | None = None
    """Soft truncate: a one-element array, the time every live row is marked deleted at."""
    deletes: pa.Table | None = None
    """Keys whose rows go (hard deletes)."""
    updates: list[tuple[pa.Table, bool]] = field(default_factory=list)
    """(keys + the columns to set, must_exist): rows changed in place; ``must_exist`` for changes of
    values (a missing row means the destination lost it), not for soft-delete marks."""
    upserts: pa.Table | None = None
    """Full rows upserted on the key."""


def data_columns(schema: pa.Schema) -> list[str]:
    return [n for n in schema.names if n not in CHANGE_COLUMNS]


def table_schema(schema: pa.Schema) -> pa.Schema:
    """The table's columns of a change stream (without the change columns)."""
    return pa.schema([f for f in schema if f.name not in CHANGE_COLUMNS], metadata=schema.metadata)


class ChangeTarget(Protocol):
    """What a destination runs the steps with (inside its open transaction)."""

    def _truncate(self, con: Any, table: str, column: str | None, value: pa.Array | None) -> None: ...
    def _delete_keys(self, con: Any, table: str, rows: pa.Table, keys: list[str]) -> None: ...
    def _update_keys(self, con: Any, table: str, rows: pa.Table, keys: list[str]) -> int: ...
    def _upsert_rows(self, con: Any, s: StreamSettings, known: Any, table: str, rows: pa.Table) -> None: ...


def apply_steps(target: ChangeTarget, con: Any, s: StreamSettings, known: Any, steps: list[ChangeStep]) -> None:
    """Run a window's steps; an update of values whose row the destination lacks is a warning (the
    destination lost a row the source still has: a reset re-reads it)."""
    table, keys = s.table_name, list(s.unique_constraints)
    missing = 0
    for step in steps:
        if step.truncate:
            target._truncate(con, table, DELETED_AT_COLUMN if step.mark_time is not None else None, step.mark_time)
        if step.deletes is not None:
            target._delete_keys(con, table, step.deletes, keys)
        for rows, must_exist in step.updates:
            matched = target._update_keys(con, table, rows, keys)
            if must_exist and 0 <= matched < rows.num_rows:
                missing += rows.num_rows - matched
        if step.upserts is not None:
            target._upsert_rows(con, s, known, table, step.upserts)
    if missing:
        message = (
            f"stream '{s.stream}': {missing:,} update(s) changed only some columns of rows that table {table!r} does not have "
            "(the other columns were not in the change log): those rows are missing; reset the stream to read them again."
        )
        log.warning(message)
        warnings.warn(message, stacklevel=2)


def check_keys(keys: list[str], schema: pa.Schema, stream: str) -> None:
    if not keys:
        raise SchemaMismatch(
            "a change stream (LOG_BASED) needs the key it is applied on.",
            stream=stream,
            fix="set key_properties (or unique_constraints) to the columns that identify a row.",
        )
    missing = [k for k in keys if k not in schema.names]
    if missing:
        raise SchemaMismatch(
            f"the change stream lacks its key column(s) {', '.join(repr(m) for m in missing)}.",
            stream=stream,
            fix="keep the key columns in `columns:`.",
        )


def plan_changes(table: pa.Table, keys: list[str], delete_mode: str) -> list[ChangeStep]:
    """The steps that apply ``table``'s changes (in row order) on ``keys``."""
    soft = delete_mode == "soft"
    ops = _op_codes(table.column(CHANGE_OP_COLUMN))
    truncates = np.flatnonzero(ops == TRUNCATE).tolist()
    bounds = [-1, *truncates, table.num_rows]
    steps = []
    for n, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        if not soft and n < len(truncates):
            continue  # hard: the truncate that ends this stretch erases it
        step = ChangeStep()
        if start >= 0:
            step.truncate = True
            if soft:
                step.mark_time = table.column(CHANGE_TIME_COLUMN).slice(start, 1).combine_chunks()
        _reduce(table, ops, start + 1, end, keys, soft, step)
        steps.append(step)
    return steps


INSERT, UPDATE, DELETE, TRUNCATE = 0, 1, 2, 3
_OPS = text_array(["insert", "update", "delete", "truncate"])  # built from buffers: pa.array would import pandas


def _op_codes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The op column as small integers (``INSERT`` ...); an unknown op is an error, not a guess."""
    codes = pc.index_in(column, value_set=_OPS)
    if codes.null_count:
        bad = pc.filter(column, pc.is_null(codes))[0].as_py()
        raise ValueError(f"unknown change op {bad!r}")
    return numpy_values(codes).astype(np.int8)


def _group_ids(keys: pa.Table) -> tuple[np.ndarray, int]:
    """A group number per row, equal for rows with equal keys (and the number of groups)."""
    ids: np.ndarray | None = None
    for column in keys.columns:
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_integer(column.type) and not column.null_count:
            codes = np.unique(numpy_values(column), return_inverse=True)[1]
        else:
            codes = numpy_values(pc.dictionary_encode(column, null_encoding="encode").indices)
        codes = codes.astype(np.int64)
        ids = codes if ids is None else np.unique(ids * (int(codes.max()) + 1) + codes, return_inverse=True)[1]
    assert ids is not None
    return ids.reshape(-1), int(ids.max()) + 1 if len(ids) else 0


def _nullable_indices(values: list[int | None] | np.ndarray) -> pa.Array:
    """An int64 index array where None (or -1) selects a null (``take`` gives null there)."""
    if isinstance(values, np.ndarray):
        data = values.astype(np.int64)
    else:
        data = np.fromiter((-1 if v is None else v for v in values), dtype=np.int64, count=len(values))
    valid = data >= 0
    if valid.all():
        return int64_array(data)
    data[~valid] = 0
    mask = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.int64(), len(data), [mask, pa.py_buffer(data)], null_count=int((~valid).sum()))


_NO_ROWS = np.empty(0, dtype=np.int64)


class _Out:
    """Index plans of the rows one stretch writes, turned into tables at the end.

    Keys whose changes all carry every column are planned with arrays (``whole_*``, ``marks``,
    ``deletes``); the few with unchanged columns fold column by column (``full_maps``, ``partial``)."""

    def __init__(self, table: pa.Table, columns: list[str], keys: list[str], soft: bool) -> None:
        self.table, self.columns, self.keys, self.soft = table, columns, keys, soft
        self.whole_rows: np.ndarray = _NO_ROWS  # upserts: every column from this row ...
        self.whole_deleted: np.ndarray = _NO_ROWS  # ... deleted at this row's time (-1: not deleted)
        self.marks: np.ndarray = _NO_ROWS  # soft deletes of rows the window has no values of
        self.full_maps: list[tuple[dict[str, int], int | None]] = []  # (column -> row, deleted-at row)
        self.partial: dict[tuple[str, ...], list[tuple[dict[str, int], int | None, bool]]] = {}
        self.deletes: list[np.ndarray] = []

    def add_partial(self, known: dict[str, int], deleted: int | None, must_exist: bool) -> None:
        cols = tuple(c for c in self.columns if c in known)
        self.partial.setdefault(cols, []).append((known, deleted, must_exist))

    def step(self, step: ChangeStep) -> None:
        t = self.table
        times = t.column(CHANGE_TIME_COLUMN)
        deletes = np.concatenate(self.deletes) if self.deletes else _NO_ROWS
        if len(deletes):
            step.deletes = t.select(self.keys).take(int64_array(np.sort(deletes)))
        if len(self.marks):
            names = [c for c in self.columns if c in self.keys]
            take = int64_array(self.marks)
            arrays = [t.column(c).take(take) for c in names] + [times.take(take).cast(DELETED_AT_TYPE)]
            step.updates.append((pa.Table.from_arrays(arrays, names=[*names, DELETED_AT_COLUMN]), False))
        for cols, entries in self.partial.items():
            for must in (True, False):
                chosen = [e for e in entries if e[2] == must]
                if not chosen:
                    continue
                names = list(self.keys) + [c for c in cols if c not in self.keys]
                arrays = [t.column(c).take(int64_array([m[c] for m, _, _ in chosen])) for c in names]
                if self.soft:
                    names.append(DELETED_AT_COLUMN)
                    arrays.append(times.take(_nullable_indices([d for _, d, _ in chosen])).cast(DELETED_AT_TYPE))
                step.updates.append((pa.Table.from_arrays(arrays, names=names), must))
        if len(self.whole_rows) or self.full_maps:
            arrays = []
            for c in self.columns:
                index = np.concatenate([self.whole_rows, np.fromiter((m[c] for m, _ in self.full_maps), np.int64, len(self.full_maps))])
                arrays.append(t.column(c).take(int64_array(index)))
            names = list(self.columns)
            if self.soft:
                deleted = np.concatenate(
                    [self.whole_deleted, np.fromiter((-1 if d is None else d for _, d in self.full_maps), np.int64, len(self.full_maps))]
                )
                names.append(DELETED_AT_COLUMN)
                arrays.append(times.take(_nullable_indices(deleted)).cast(DELETED_AT_TYPE))
            step.upserts = pa.Table.from_arrays(arrays, names=names)


def _reduce(table: pa.Table, ops: np.ndarray, start: int, end: int, keys: list[str], soft: bool, step: ChangeStep) -> None:
    """Fold each key's changes of rows ``start:end`` (in row order) into ``step``.

    Why two paths: a key whose changes all carry every column ends as its last change (a row, a
    delete, or a soft delete with the last values it had), which numpy computes for all keys at
    once; only keys with unchanged columns (TOASTed values) fold column by column in Python."""
    if end <= start:
        return
    columns = data_columns(table.schema)
    out = _Out(table, columns, keys, soft)
    n = end - start
    unchanged_col = table.column(CHANGE_UNCHANGED_COLUMN).slice(start, n)
    if unchanged_col.null_count < n:
        lengths = pc.list_value_length(unchanged_col).fill_null(0)
        partial_row = numpy_values(lengths) > 0
    else:
        partial_row = np.zeros(n, dtype=bool)
    gid, groups = _group_ids(table.slice(start, n).select(keys))
    order = np.argsort(gid, kind="stable")  # rows of each group together, in row order
    bounds = np.searchsorted(gid[order], np.arange(groups + 1))
    last = order[bounds[1:] - 1]  # each group's last row (relative to start)
    slow = np.zeros(groups, dtype=bool)
    slow[gid[partial_row]] = True
    kinds = ops[start:end]
    # each group's last row that is not a delete (-1: none): the last values a soft delete keeps
    kept = np.where(kinds != DELETE, np.arange(n), -1)
    last_kept = np.maximum.reduceat(kept[order], bounds[:-1]) if n else _NO_ROWS
    fast = ~slow
    last_op = kinds[last]
    live = fast & (last_op != DELETE)
    gone = fast & (last_op == DELETE)
    out.whole_rows = last[live] + start
    out.whole_deleted = np.full(int(live.sum()), -1, dtype=np.int64)
    if soft:
        with_values = gone & (last_kept >= 0)
        out.whole_rows = np.concatenate([out.whole_rows, last_kept[with_values] + start])
        out.whole_deleted = np.concatenate([out.whole_deleted, last[with_values] + start])
        out.marks = last[gone & (last_kept < 0)] + start
    else:
        out.deletes.append(last[gone] + start)
    unchanged = unchanged_col.to_pylist() if slow.any() else None
    for g in np.flatnonzero(slow).tolist():
        known: dict[str, int] | None = None
        deleted: int | None = None
        for i in (order[bounds[g] : bounds[g + 1]] + start).tolist():
            op = ops[i]
            if op == INSERT:
                known, deleted = {c: i for c in columns}, None
            elif op == UPDATE:
                skip = set((unchanged[i - start] if unchanged is not None else None) or ())
                known = {**(known or {}), **{c: i for c in columns if c not in skip}}
                deleted = None
            elif op == DELETE:
                deleted = i
                known = known or {k: i for k in keys}
        assert known is not None
        full = len(known) == len(columns)
        if deleted is not None and not soft:
            out.deletes.append(np.array([deleted], dtype=np.int64))
        elif full:
            out.full_maps.append((known, deleted))
        else:
            out.add_partial(known, deleted, deleted is None)
    out.step(step)
