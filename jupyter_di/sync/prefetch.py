"""Reading the next batches while the destination writes the current one.

Why: sources (ADBC, DuckDB, Arrow IPC) and destinations (COPY, DuckDB
inserts) do their work in C with the GIL released, so on two cores a stream
can read and write at the same time.  At most ``depth`` batches wait in
between, which keeps memory bounded.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

import pyarrow as pa

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


@contextlib.contextmanager
def prefetched(reader: pa.RecordBatchReader, depth: int = 2) -> Iterator[pa.RecordBatchReader]:
    """The same stream, read ahead by a background thread, for the ``with`` block.

    Leaving the block (also by an exception in the consumer) stops the reading
    thread and waits for it, so the source's connection is free again.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in reader:
                while not stop.is_set():
                    try:
                        slots.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
            slots.put(_Failure(exc))

    thread = threading.Thread(target=produce, name="jupyter-di-prefetch", daemon=True)
    thread.start()

    def consume() -> Iterator[pa.RecordBatch]:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    try:
        yield pa.RecordBatchReader.from_batches(reader.schema, consume())
    finally:
        stop.set()
        while thread.is_alive():
            try:  # unblock a producer waiting for room
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
