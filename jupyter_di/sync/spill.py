"""Spilling a stream's record batches to an Arrow IPC file, and reading them back.

Why spill: a source block's output is "the data fetched from the source"
(spec), consumed by any number of downstream blocks, possibly far bigger than
memory.  Batches go to disk as they arrive (bounded memory) and come back
memory-mapped, zero-copy, as often as needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..connectors._shared.row_values import cursor_values
from ..connectors.base import BOOKMARK_STATE_KEY, INCREMENTAL, SOURCE_STATE_KEY, StreamSettings
from .live_spill import LiveSpill

SPILL_BATCH_BYTES = 1 << 20
"""Spilled batches are at most about this size: a destination block reading a spill back holds a few
of them at a time (read ahead, the engine's scan); measured 5M rows into DuckDB through a notebook,
peak RSS 302-306 MB with 1 MB pieces, 320 MB with the source's 4 MB batches, at the same speed."""

ProgressCallback = Callable[[int, float], None]
"""(rows so far, seconds so far)"""


@dataclass
class SpillResult:
    path: Path
    schema: pa.Schema
    rows: int
    seconds: float
    batch_states: list[dict[str, Any] | None] = field(default_factory=list)
    null_cursor_rows: int = 0
    """Rows read whose bookmark column is NULL (synced, but not trackable incrementally)."""

    @property
    def final_state(self) -> dict[str, Any] | None:
        for state in reversed(self.batch_states):
            if state is not None:
                return state
        return None


def spill(
    reader: pa.RecordBatchReader,
    path: Path,
    settings: StreamSettings,
    on_progress: ProgressCallback | None = None,
    live: LiveSpill | None = None,
) -> SpillResult:
    """Write every batch of ``reader`` to ``path``; remember each batch's bookmark state.

    The file is an Arrow IPC *stream* (no footer), so with ``live`` consumers
    can read each batch as soon as it is written.
    """
    started = time.perf_counter()
    rows = null_rows = 0
    states: list[dict[str, Any] | None] = live.origin["batch_states"] if live is not None else []
    incremental = settings.replication_method == INCREMENTAL and settings.bookmark_properties
    bookmark: dict[str, Any] | None = None
    source_state: Any = None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, reader.schema) as writer:
        if live is not None:
            live.opened(tmp)
            live.publish(sink.tell(), None, batch=False)
        for batch, batch_source_state, given in _pieces(reader, SPILL_BATCH_BYTES):
            writer.write_batch(batch)
            rows += batch.num_rows
            if incremental:
                values, nulls = cursor_values(batch, settings.bookmark_properties)
                null_rows += nulls
                if given is _ABSENT:
                    bookmark = values or bookmark
            if given is not _ABSENT and given is not _KEEP:  # the source says which bookmark holds (a partitioned read, a log position)
                bookmark = given
            if batch_source_state is not None:
                source_state = batch_source_state
            state = _state(bookmark, source_state)
            if live is not None:
                live.publish(sink.tell(), state)  # appends the state, then wakes the readers
            else:
                states.append(state)
            if on_progress:
                on_progress(rows, time.perf_counter() - started)
    if live is None:
        tmp.replace(path)
    else:
        live.rename(tmp, path)
        live.publish(path.stat().st_size, None, batch=False)  # the end-of-stream marker
        live.finish()
    return SpillResult(
        path=path, schema=reader.schema, rows=rows, seconds=time.perf_counter() - started, batch_states=states, null_cursor_rows=null_rows
    )


def _state(bookmark: dict[str, Any] | None, source_state: Any) -> dict[str, Any] | None:
    """What becomes true once a batch is committed: the bookmark of its last trackable row, and the
    source's own state (both carried forward from earlier batches)."""
    if bookmark is None and source_state is None:
        return None
    state: dict[str, Any] = {"bookmark": bookmark}
    if source_state is not None:
        state["source_state"] = source_state
    return state


_ABSENT = object()
"""The batch says nothing of its bookmark: it is the bookmark of its last row (sorted reads)."""
_KEEP = object()
"""A piece before the last of a batch that carries its bookmark: the previous bookmark still holds."""


def _pieces(reader: pa.RecordBatchReader, max_bytes: int):
    """(piece, source state or None, bookmark given or _ABSENT/_KEEP): the reader's non-empty batches
    cut to about ``max_bytes`` each (slices share the memory).  A batch's source state
    (``SOURCE_STATE_KEY``) and bookmark (``BOOKMARK_STATE_KEY``) are stripped from the piece and given
    with the batch's last piece only: they hold once all of the batch is in."""
    schema_metadata = reader.schema.metadata
    for batch in reader:
        metadata = batch.schema.metadata or {}
        if batch.num_rows == 0 and SOURCE_STATE_KEY not in metadata and BOOKMARK_STATE_KEY not in metadata:
            continue  # kept only when it moves the state on (a log position with no change to deliver)
        source_state = None
        given: Any = _ABSENT
        if SOURCE_STATE_KEY in metadata:
            source_state = json.loads(metadata[SOURCE_STATE_KEY])
        if BOOKMARK_STATE_KEY in metadata:
            given = json.loads(metadata[BOOKMARK_STATE_KEY]).get("bookmark")
        if SOURCE_STATE_KEY in metadata or BOOKMARK_STATE_KEY in metadata:
            batch = batch.replace_schema_metadata(schema_metadata)
        parts = -(-batch.nbytes // max_bytes) if max_bytes > 0 else 1
        if parts <= 1:
            yield batch, source_state, given
            continue
        step = -(-batch.num_rows // parts)
        for start in range(0, batch.num_rows, step):
            last = start + step >= batch.num_rows
            yield batch.slice(start, step), (source_state if last else None), (given if last or given is _ABSENT else _KEEP)


def open_reader(path: Path) -> pa.RecordBatchReader:
    """A streaming reader over a spilled file.

    Plain reads, not a memory map: a consumer streaming a file bigger than
    memory should hold one batch at a time, and mapped pages it touched would
    stay counted against the process until unmapped.
    """
    return pa.ipc.open_stream(pa.OSFile(str(path), "r"))


def read_table(path: Path) -> pa.Table:
    return pa.ipc.open_stream(pa.memory_map(str(path), "r")).read_all()
