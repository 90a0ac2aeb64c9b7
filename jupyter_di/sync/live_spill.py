"""A stream's spill file that consumers read while the source is still writing it.

Why: a destination block that waits for its source block to spill every row
costs read + write; tailing the spill as it grows costs about max(read, write),
with the same bounded memory (both sides hold a batch or two) and the same
file for every consumer.  The writer publishes a batch (and the bookmark state
that becomes true with it) only after its bytes are in the file, so a reader
never sees a batch before its state.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import UpstreamFailed


class LiveSpill:
    """Shared between one writer (the source block's stream) and any number of readers."""

    def __init__(self, stream: str, origin: dict[str, Any]) -> None:
        self.stream = stream
        self.origin = origin
        """The source's origin dict; ``origin["batch_states"]`` grows with every published batch."""
        self.origin.setdefault("batch_states", [])
        self._cond = threading.Condition()
        self._path: Path | None = None
        self.schema: pa.Schema | None = None
        self.info: dict[str, Any] | None = None
        self._published = 0
        self._finished = False
        self._error: BaseException | None = None
        self.mirror: Any = None
        """Told of every writer event too (``pipeline/dask_live.py``: readers in other processes)."""
        self.handoff: Any = None
        """Set when the stream is offered to its one reader to pass through (``integration/pass_through.py``)."""

    # -- writer side ------------------------------------------------------------------------
    def begin(self, schema: pa.Schema, info: dict[str, Any]) -> None:
        """The source opened the stream: its schema and catalog entry are known."""
        with self._cond:
            self.schema, self.info = schema, info
            self._cond.notify_all()
        if self.mirror is not None:
            self.mirror.begin(schema, info, self.origin)

    def opened(self, path: Path) -> None:
        with self._cond:
            self._path = path
        if self.mirror is not None:
            self.mirror.opened(path)

    def publish(self, nbytes: int, state: dict[str, Any] | None, *, batch: bool = True) -> None:
        """The file now holds ``nbytes`` readable bytes (and one more batch with ``state``)."""
        with self._cond:
            if batch:
                self.origin["batch_states"].append(state)
            self._published = nbytes
            self._cond.notify_all()
        if self.mirror is not None:
            self.mirror.publish(nbytes, state, batch)

    def rename(self, src: Path, dst: Path) -> None:
        """Move the finished file into place (under the lock: a reader opening it sees one path)."""
        with self._cond:
            src.replace(dst)
            self._path = dst
            if self.mirror is not None:
                self.mirror.opened(dst)

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()
        if self.mirror is not None:
            self.mirror.finish()

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            if not self._finished:
                self._error = exc
                self._cond.notify_all()
                if self.mirror is not None:
                    self.mirror.fail(exc)

    # -- reader side ------------------------------------------------------------------------
    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise UpstreamFailed(self.origin.get("block", "?"), stream=self.stream)

    def wait_started(self) -> tuple[pa.Schema, dict[str, Any]]:
        """The stream's schema and catalog entry, once the source has opened it."""
        with self._cond:
            self._cond.wait_for(lambda: self.schema is not None or self._error is not None)
            self._raise_if_failed()
            assert self.schema is not None and self.info is not None
            return self.schema, self.info

    def _wait_bytes(self, end: int) -> int:
        """Block until ``end`` bytes are published or the stream ended; the bytes available."""
        with self._cond:
            self._cond.wait_for(lambda: self._published >= end or self._finished or self._error is not None)
            self._raise_if_failed()
            return self._published

    def reader(self) -> pa.RecordBatchReader:
        """The stream's batches as they are written (waits for each; ends with the stream).

        Returns once the schema is known, before the first batch: a destination
        then connects and prepares its table while the source computes that batch
        (PostgreSQL into DuckDB, an incremental run: 30-50 ms less).
        """
        schema, _ = self.wait_started()
        return pa.RecordBatchReader.from_batches(schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        self._wait_bytes(1)
        with self._cond:  # not between the writer's rename and its bookkeeping
            assert self._path is not None
            fd = os.open(self._path, os.O_RDONLY)
        yield from tail_batches(self, fd)


def tail_batches(live: Any, fd: int) -> Iterator[pa.RecordBatch]:
    """The Arrow stream in ``fd`` as ``live`` publishes it; closes ``fd``."""
    tail = TailFile(live, fd)
    try:
        with pa.ipc.open_stream(tail) as batches:
            yield from batches
    finally:
        tail.close()


class TailFile(io.RawIOBase):
    """A read-only file that blocks at the published end instead of hitting end-of-file.

    Arrow's IPC reader expects a read of n bytes to return n bytes unless the
    stream is over, so a read waits until all n are published.
    """

    def __init__(self, live: Any, fd: int) -> None:
        """``live``: a ``LiveSpill``, or any reader with its ``_wait_bytes`` (``pipeline/dask_live.py``)."""
        super().__init__()
        self._live = live
        self._fd = fd
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        available = self._live._wait_bytes(self._pos + size)
        n = min(size, available - self._pos)
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._pos)
        self._pos += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
