"""Spilling a stream's record batches to an Arrow IPC file, and reading them back.

Why spill: a source block's output is "the data fetched from the source"
(spec), consumed by any number of downstream blocks, possibly far bigger than
memory.  Batches go to disk as they arrive (bounded memory) and come back
memory-mapped, zero-copy, as often as needed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa

from ..connectors.base import INCREMENTAL, StreamSettings
from .live_spill import LiveSpill
from ..connectors.row_values import last_row_values

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
    rows = 0
    states: list[dict[str, Any] | None] = live.origin["batch_states"] if live is not None else []
    incremental = settings.replication_method == INCREMENTAL and settings.bookmark_properties
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, reader.schema) as writer:
        if live is not None:
            live.opened(tmp)
            live.publish(sink.tell(), None, batch=False)
        for batch in _pieces(reader, SPILL_BATCH_BYTES):
            writer.write_batch(batch)
            rows += batch.num_rows
            bookmark = last_row_values(batch, settings.bookmark_properties) if incremental else None
            state = {"bookmark": bookmark} if bookmark else None
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
    return SpillResult(path=path, schema=reader.schema, rows=rows, seconds=time.perf_counter() - started, batch_states=states)


def _pieces(reader: pa.RecordBatchReader, max_bytes: int):
    """The reader's non-empty batches, cut to about ``max_bytes`` each (slices share the memory)."""
    for batch in reader:
        if batch.num_rows == 0:
            continue
        parts = -(-batch.nbytes // max_bytes) if max_bytes > 0 else 1
        if parts <= 1:
            yield batch
            continue
        step = -(-batch.num_rows // parts)
        for start in range(0, batch.num_rows, step):
            yield batch.slice(start, step)


def open_reader(path: Path) -> pa.RecordBatchReader:
    """A streaming reader over a spilled file.

    Plain reads, not a memory map: a consumer streaming a file bigger than
    memory should hold one batch at a time, and mapped pages it touched would
    stay counted against the process until unmapped.
    """
    return pa.ipc.open_stream(pa.OSFile(str(path), "r"))


def read_table(path: Path) -> pa.Table:
    return pa.ipc.open_stream(pa.memory_map(str(path), "r")).read_all()
