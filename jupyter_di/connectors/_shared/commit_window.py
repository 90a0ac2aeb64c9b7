"""A stream's chunks cut into commit windows: the rows written between two commits.

Why a window object instead of a per-chunk loop: an engine such as DuckDB
writes fastest, and with the least memory, when one INSERT statement pulls a
whole window of batches (it fills and writes whole row groups in parallel),
while the write loop still needs to know, after the statement, how many rows
went in and which state became true with them.  The window hands the engine a
lazy iterator of batches and keeps that account.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from ..base import Chunk


class ChunkSource:
    """The chunks of one write, with one chunk of look-ahead (a window may stop before it)."""

    def __init__(self, chunks: Iterator[Chunk]) -> None:
        self._chunks = chunks
        self._held: Chunk | None = None
        self.done = False

    def next(self) -> Chunk | None:
        chunk: Chunk | None
        if self._held is not None:
            chunk, self._held = self._held, None
            return chunk
        if self.done:
            return None
        chunk = next(self._chunks, None)
        if chunk is None:
            self.done = True
        return chunk

    def push_back(self, chunk: Chunk) -> None:
        self._held = chunk

    @property
    def exhausted(self) -> bool:
        return self.done and self._held is None


class CommitWindow:
    """The next chunks of ``source`` up to ``max_rows`` rows, ``max_bytes`` of Arrow data or
    ``max_seconds``, all of one schema."""

    def __init__(self, source: ChunkSource, max_rows: float = math.inf, max_seconds: float = math.inf, max_bytes: float = math.inf) -> None:
        self._source = source
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._deadline = time.monotonic() + max_seconds
        self.rows = 0
        self.nbytes = 0
        self.state: Any = None
        self.error: BaseException | None = None
        self._first = self._next_with_rows()
        self.schema: pa.Schema | None = self._first.batch.schema if self._first is not None else None
        self.empty = self._first is None
        """No rows at all (``state`` may still have advanced)."""

    def _next_with_rows(self) -> Chunk | None:
        """The next chunk that has rows and columns; the state of empty ones is kept."""
        while True:
            chunk = self._source.next()
            if chunk is None or (chunk.batch.num_rows and chunk.batch.num_columns):
                return chunk
            if chunk.state is not None:
                self.state = chunk.state

    @property
    def last(self) -> bool:
        """Whether the stream ended inside this window (valid once ``batches`` is consumed)."""
        return self._source.exhausted

    def _take(self, chunk: Chunk) -> pa.RecordBatch:
        self.rows += chunk.batch.num_rows
        self.nbytes += chunk.batch.nbytes
        if chunk.state is not None:
            self.state = chunk.state
        return chunk.batch

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The window's batches; an error from the source is kept in ``error`` and re-raised."""
        try:
            if self._first is None:
                return
            first, self._first = self._first, None
            yield self._take(first)
            while self.rows < self._max_rows and self.nbytes < self._max_bytes and time.monotonic() < self._deadline:
                chunk = self._next_with_rows()
                if chunk is None:
                    return
                if not chunk.batch.schema.equals(self.schema, check_metadata=False):
                    self._source.push_back(chunk)
                    return
                yield self._take(chunk)
        except GeneratorExit:  # the engine stopped reading (its own statement failed): not the source's error
            raise
        except BaseException as exc:
            self.error = exc
            raise

    def reader(self) -> pa.RecordBatchReader:
        """The window as an Arrow stream (for engines that scan one)."""
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())


def coalesced(chunks: Iterable[Chunk], max_bytes: int) -> Iterator[Chunk]:
    """Consecutive chunks of one schema merged up to about ``max_bytes`` (the last state wins).

    Why: sources cut streams into small batches to keep memory low, while a
    destination that pays per statement and per commit (a COPY, a WAL flush)
    wants fewer, larger ones.
    """
    pending: list[Chunk] = []
    size = 0

    def merged() -> Chunk:
        batches = [c.batch for c in pending if c.batch.num_rows]
        state = next((c.state for c in reversed(pending) if c.state is not None), None)
        if len(batches) == 1:
            return Chunk(batch=batches[0], state=state)
        if not batches:
            return Chunk(batch=pending[-1].batch, state=state)
        table = pa.Table.from_batches(batches).combine_chunks()
        return Chunk(batch=table.to_batches()[0], state=state)

    for chunk in chunks:
        if pending and not chunk.batch.schema.equals(pending[0].batch.schema, check_metadata=False):
            yield merged()
            pending, size = [], 0
        pending.append(chunk)
        size += chunk.batch.nbytes
        if size >= max_bytes:
            yield merged()
            pending, size = [], 0
    if pending:
        yield merged()
