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
from .values import last_row_values

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


def spill(reader: pa.RecordBatchReader, path: Path, settings: StreamSettings, on_progress: ProgressCallback | None = None) -> SpillResult:
    """Write every batch of ``reader`` to ``path``; remember each batch's bookmark state."""
    started = time.perf_counter()
    rows = 0
    states: list[dict[str, Any] | None] = []
    incremental = settings.replication_method == INCREMENTAL and settings.bookmark_properties
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            writer.write_batch(batch)
            rows += batch.num_rows
            bookmark = last_row_values(batch, settings.bookmark_properties) if incremental else None
            states.append({"bookmark": bookmark} if bookmark else None)
            if on_progress:
                on_progress(rows, time.perf_counter() - started)
    tmp.replace(path)
    return SpillResult(path=path, schema=reader.schema, rows=rows, seconds=time.perf_counter() - started, batch_states=states)


def open_reader(path: Path) -> pa.RecordBatchReader:
    """A streaming reader over a spilled file.

    Plain reads, not a memory map: a consumer streaming a file bigger than
    memory should hold one batch at a time, and mapped pages it touched would
    stay counted against the process until unmapped.
    """
    source = pa.OSFile(str(path), "r")
    file_reader = pa.ipc.open_file(source)

    def batches():
        for i in range(file_reader.num_record_batches):
            yield file_reader.get_batch(i)

    return pa.RecordBatchReader.from_batches(file_reader.schema, batches())


def read_table(path: Path) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
