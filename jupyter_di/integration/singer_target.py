"""``jupyter-di target NAME``: Singer messages on stdin, written by the built-in destination NAME.

Why here: any destination in the connector registry (PostgreSQL, DuckDB, SQLite, files, and those
added by plug-ins) becomes a Singer target without code of its own, for Meltano or a shell pipe.

How a stream is written:

- each stream gets its own ``Destination.write`` on a thread, fed Arrow batches through a bounded
  queue (the parser never runs far ahead of the database); rows are appended, or upserted on the
  stream's ``key_properties`` (the last record of a key wins, as Singer targets do);
- the stream's SCHEMA messages are applied as a ``source: singer`` block applies them
  (``_shared/singer_shape.py``): new properties become columns, types widen, a record without its
  key is an error naming the stream and the record's position.  When the shape changes, the write
  under the old shape is finished (committed) and a new one starts, which adds the columns;
- a STATE message is printed on stdout only once every row received before it is committed by the
  destination (Singer targets print the state they have made durable); states that become durable
  together are printed once, the newest.  At the end of input everything is committed and the last
  state printed.  On an error the run stops with exit code 1 and prints no state past what is
  committed;
- ``ACTIVATE_VERSION`` (full-table replacement) is not supported: logged and ignored.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import pyarrow as pa

from ..connectors import registry
from ..connectors._shared.singer_lines import lines_to_batch, parses_exactly, record_stream
from ..connectors._shared.singer_messages import RecordBatcher, SingerProtocolError
from ..connectors._shared.singer_shape import StreamShape
from ..connectors.base import INCREMENTAL, Chunk, Destination, StreamSettings, WriteRequest, check_table_name
from ..errors import DIError

log = logging.getLogger("jupyter_di.target")

BATCH_ROWS = 50_000
"""Rows per Arrow batch handed to the destination (it merges or splits them into its own commits)."""
QUEUE_BATCHES = 2
"""Batches waiting per stream: the parser runs at most this far ahead of the destination."""

_END = object()
_ABORT = object()
"""Put on a write's queue when the run fails: the write raises, so nothing it holds is committed."""


class _Aborted(Exception):
    """The run failed elsewhere (another stream, the input): this write stops uncommitted."""


@dataclass
class TargetOptions:
    """Per-run choices (command-line flags): they apply to every stream."""

    validate_records: bool = False
    auto_add_new_fields: bool = True
    batch_rows: int = BATCH_ROWS


@dataclass
class _Segment:
    """One ``Destination.write`` of one stream under one shape, running on its own thread."""

    thread: threading.Thread
    queue: queue.Queue[Any]
    error: list[BaseException] = field(default_factory=list)


class _Stream:
    """One stream: its shape, the batch being built, the write running now, rows sent and committed."""

    def __init__(self, name: str, shape: StreamShape, batch_rows: int) -> None:
        self.name = name
        self.shape = shape
        self.batch_rows = batch_rows
        assert shape.schema is not None
        self.batcher = RecordBatcher(shape.schema, batch_rows, name)
        self.segment: _Segment | None = None
        self.lines: list[bytes] = []
        """RECORD lines not parsed yet (the C path, ``_shared/singer_lines.py``), in order after the batcher's records."""
        self.sent = 0
        self.committed = 0
        self.started = False  # a write was started (the table exists)


def _json_loads() -> Any:
    """orjson's parser when it is installed (about 3x the standard library's on RECORD lines)."""
    try:
        import orjson

        return orjson.loads
    except ImportError:
        return json.loads


class SingerTarget:
    """Reads Singer messages, writes them with one destination, prints the states made durable."""

    def __init__(self, destination: str, config: dict[str, Any], out: IO[str], options: TargetOptions | None = None) -> None:
        self.destination_cls = registry.destination_class(destination)
        self.config = config
        self.out = out
        self.options = options or TargetOptions()
        self.streams: dict[str, _Stream] = {}
        self.pending: list[tuple[Any, dict[str, int]]] = []  # (state, rows each stream had sent before it)
        self.lock = threading.Lock()
        self.line = 0
        self.raw_streams: dict[bytes, _Stream] = {}
        """Streams whose RECORD lines go to Arrow's JSON reader, by their name as the lines spell it."""
        self._loads = _json_loads()
        self.report: list[dict[str, Any]] = []
        """The destinations' report lines (``Destination.report_warnings``), each with its stream."""

    # ---- the message loop

    def run(self, lines: Iterator[bytes]) -> None:
        """Consume every message; on return every row is committed and the last state printed."""
        loads = self._loads
        raw_streams = self.raw_streams
        batch_rows = self.options.batch_rows
        try:
            for raw in lines:
                self.line += 1
                if raw_streams:
                    name = record_stream(raw)
                    stream = raw_streams.get(name) if name is not None else None
                    if stream is not None:  # the hottest path: the line is kept as it is
                        if len(stream.batcher):
                            self._flush_records(stream)
                        stream.lines.append(raw)
                        stream.sent += 1
                        if len(stream.lines) >= batch_rows:
                            self._send_lines(stream)
                        continue
                try:
                    msg = loads(raw)
                    kind = msg["type"]
                    if kind == "RECORD":  # the hot path: no more than a dict lookup per record
                        self._record(msg)
                        continue
                    kind = kind.upper()
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    if not raw.strip():
                        continue
                    raise SingerProtocolError(
                        f"line {self.line:,} of the input is not a Singer message ({type(exc).__name__}: {str(exc)[:100]}).",
                        fix="feed the target a tap's stdout: one JSON object with a 'type' per line.",
                    ) from None
                if kind == "RECORD":
                    self._record(msg)
                elif kind == "SCHEMA":
                    self._schema(msg)
                elif kind == "STATE":
                    self._state(msg.get("value"))
                elif kind == "ACTIVATE_VERSION":
                    log.warning("ACTIVATE_VERSION for stream %r ignored: full-table replacement is not supported", msg.get("stream"))
            for stream in self.streams.values():
                if stream.segment is None and not stream.started and not len(stream.batcher) and not stream.lines:
                    assert stream.shape.schema is not None  # a stream without records still gets its table
                    stream.segment = self._start_segment(stream, stream.shape.schema)
                self._end_segment(stream)
            self._emit_durable()
        except BaseException:
            self._abort()
            raise

    def _record(self, msg: dict[str, Any]) -> None:
        stream = self.streams.get(msg.get("stream"))  # type: ignore[arg-type]
        if stream is None:
            raise SingerProtocolError(
                f"line {self.line:,}: a RECORD for stream {msg.get('stream')!r} came before its SCHEMA.",
                stream=str(msg.get("stream")),
                fix="the tap must send a stream's SCHEMA before its records (this is a bug in the tap).",
            )
        record = msg.get("record")
        if not isinstance(record, dict):
            raise SingerProtocolError(
                f"line {self.line:,}: the RECORD's 'record' is not an object.", stream=stream.name, fix="this is a bug in the tap."
            )
        if stream.lines:
            self._send_lines(stream)
        stream.sent += 1
        self._add_record(stream, record)

    def _add_record(self, stream: _Stream, record: dict[str, Any]) -> None:
        if stream.shape.keys or stream.shape.validate_records:
            stream.shape.check(record)
        else:
            stream.shape.records += 1
        batch = stream.batcher.add(record)
        if batch is not None:
            self._send(stream, batch)

    def _flush_records(self, stream: _Stream) -> None:
        batch = stream.batcher.flush()
        if batch is not None:
            self._send(stream, batch)

    def _send_lines(self, stream: _Stream) -> None:
        """Parse the stream's kept RECORD lines in C and send them; lines Arrow refuses go the dict way."""
        lines, stream.lines = stream.lines, []
        if not lines:
            return
        assert stream.shape.schema is not None
        try:
            batch = lines_to_batch(lines, stream.shape.schema)
        except (pa.ArrowInvalid, ValueError):
            for line in lines:
                self._add_record(stream, self._loads(line)["record"])
            self._flush_records(stream)
            return
        stream.shape.check_batch(batch)
        self._send(stream, batch)

    def _fast_path(self, stream: _Stream) -> None:
        """Route the stream's RECORD lines to Arrow's JSON reader when its columns allow it."""
        key = json.dumps(stream.name, ensure_ascii=False)[1:-1].encode("utf-8")
        schema = stream.shape.schema
        if schema is not None and not stream.shape.validate_records and parses_exactly(schema):
            self.raw_streams[key] = stream
        else:
            self.raw_streams.pop(key, None)

    def _schema(self, msg: dict[str, Any]) -> None:
        name = msg.get("stream")
        if not isinstance(name, str) or not name:
            raise SingerProtocolError(f"line {self.line:,}: a SCHEMA without a stream name.", fix="this is a bug in the tap.")
        stream = self.streams.get(name)
        if stream is None:
            check_table_name(name, stream=name)
            shape = StreamShape(name, auto_add_new_fields=self.options.auto_add_new_fields, validate_records=self.options.validate_records)
            shape.update(msg)
            self.streams[name] = _Stream(name, shape, self.options.batch_rows)
            self._fast_path(self.streams[name])
            return
        self._send_lines(stream)  # the lines before this SCHEMA are parsed under the shape they came with
        keys = list(stream.shape.keys)
        if stream.shape.update(msg) or keys != stream.shape.keys:
            flushed = stream.batcher.flush()
            if flushed is not None:
                self._send(stream, flushed)
            self._end_segment(stream)  # the next rows are written under the new shape (new columns added)
            assert stream.shape.schema is not None
            stream.batcher = RecordBatcher(stream.shape.schema, stream.batch_rows, name)
            self._fast_path(stream)

    def _state(self, value: Any) -> None:
        if value is None:
            return
        with self.lock:
            self.pending.append((value, {s.name: s.sent for s in self.streams.values()}))
        self._emit_durable()

    # ---- writes

    def _send(self, stream: _Stream, batch: pa.RecordBatch) -> None:
        if stream.segment is None:
            stream.segment = self._start_segment(stream, batch.schema)
        segment = stream.segment
        while True:
            if segment.error:
                raise segment.error[0]
            try:
                segment.queue.put(batch, timeout=0.5)
                return
            except queue.Full:
                continue

    def _start_segment(self, stream: _Stream, schema: pa.Schema) -> _Segment:
        stream.started = True
        keys = list(stream.shape.keys)
        settings = StreamSettings(
            stream=stream.name,
            replication_method=INCREMENTAL,
            key_properties=keys,
            unique_constraints=keys,
            auto_add_new_fields=self.options.auto_add_new_fields,
        )
        request = WriteRequest(settings=settings, schema=schema)
        chunks: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_BATCHES)
        segment = _Segment(thread=threading.Thread(), queue=chunks)
        base = stream.committed

        def on_commit(rows: int, state: Any) -> None:
            with self.lock:
                stream.committed = max(stream.committed, base + rows)
            self._emit_durable()

        def feed() -> Iterator[Chunk]:
            while True:
                item = chunks.get()
                if item is _END:
                    return
                if item is _ABORT:
                    raise _Aborted()
                yield Chunk(batch=item)

        def work() -> None:
            try:
                destination: Destination
                with self.destination_cls(dict(self.config)) as destination:
                    result = destination.write(request, feed(), on_commit)
                    with self.lock:
                        self.report += [{"stream": stream.name, **line} for line in destination.report_warnings]
                on_commit(result.rows_written, None)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                segment.error.append(exc)
                while True:  # unblock the reader: drain what it still puts
                    try:
                        if chunks.get(timeout=0.5) in (_END, _ABORT):
                            return
                    except queue.Empty:
                        return

        segment.thread = threading.Thread(target=work, name=f"jupyter-di-target-{stream.name}", daemon=True)
        segment.thread.start()
        return segment

    def _end_segment(self, stream: _Stream) -> None:
        """Flush the stream's rows and finish its write (commit); raise its error."""
        self._send_lines(stream)
        stream.shape.finish()  # records that failed validation are reported before the last rows are sent
        batch = stream.batcher.flush()
        if batch is not None:
            self._send(stream, batch)
        segment, stream.segment = stream.segment, None
        if segment is None:
            return
        while segment.thread.is_alive():
            try:
                segment.queue.put(_END, timeout=0.5)
                break
            except queue.Full:
                continue
        segment.thread.join()
        if segment.error:
            raise segment.error[0]

    def _abort(self) -> None:
        """Stop every write (their open transactions roll back)."""
        for stream in self.streams.values():
            segment, stream.segment = stream.segment, None
            if segment is None:
                continue
            segment.error.append(DIError("stopped"))
            while segment.thread.is_alive():
                try:
                    segment.queue.put_nowait(_ABORT)
                except queue.Full:
                    try:
                        segment.queue.get_nowait()
                    except queue.Empty:
                        pass
                segment.thread.join(timeout=0.5)

    # ---- states

    def _emit_durable(self) -> None:
        """Print the newest pending state whose rows are all committed (older ones it covers are dropped)."""
        with self.lock:
            ready = None
            while self.pending and all(self.streams[s].committed >= n for s, n in self.pending[0][1].items()):
                ready = self.pending.pop(0)[0]
            if ready is not None:
                self.out.write(json.dumps(ready, separators=(",", ":"), ensure_ascii=False) + "\n")
                self.out.flush()
