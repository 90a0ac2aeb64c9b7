"""A Singer tap as a source: discover via ``--discover``, read via ``--catalog``/``--state``.

Semantics, where Singer differs from our built-in connectors:

- **Ordering.** A tap orders rows itself (SDK SQL taps order by the replication
  key); we pass them through in the tap's order and do not re-sort.  Taps
  re-emit rows equal to the bookmark (inclusive ``>=``), which matches our
  inclusive bookmark.  Singer knows one replication key: the first bookmark
  property is sent as ``replication-key``.
- **Reading is streaming.** The tap runs while the reader is consumed; a full
  OS pipe blocks the tap, so memory is bounded by ``batch_size`` rows (two
  batches: the last one is held back, see below).  If the consumer stops early
  (or ``limit`` is reached) the tap is killed.
- **The tap's own state.** For an INCREMENTAL stream each STATE message the tap
  prints is attached (``SOURCE_STATE_KEY``) to the batch that ends where it was
  printed: the rows buffered so far are cut into a batch there, unless fewer
  than ``STATE_FLUSH_MIN_ROWS`` are buffered (taps that print a STATE after
  every record would otherwise make one-row batches), in which case the state
  rides on the next batch cut, which still holds every row it covers.  The last
  batch is held back until the next one or the end of the tap, so a STATE
  printed after the last record rides on it.  The sync engine commits that
  state with the rows, and the next read hands it back verbatim as ``--state``
  (``state.py``): a classic singer-io tap finds its own bookmarks (epoch
  numbers, ``<stream>_events`` keys) instead of resyncing.  Each read runs the
  tap for one stream, so what is kept per stream is that run's last STATE.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ...errors import ConfigError
from ...run_dirs import RunDir
from .._shared.singer_messages import RECORD, SCHEMA, STATE, RecordBatcher, SingerProtocolError, parse_line
from .._shared.singer_shape import StreamShape, cast_to
from .._shared.stream_checks import require_bookmark_properties
from ..base import INCREMENTAL, SOURCE_STATE_KEY, ReadRequest, Source, StreamSettings
from ..catalog import find_stream, names_of, only_streams, selected_catalog, stream_ids
from .config import CONFIG_SCHEMA, user_config
from .process import SingerProcess
from .state import state_for_tap

STATE_FLUSH_MIN_ROWS = 1000
"""A tap's STATE cuts the buffered rows into a batch only when at least this many (or
``batch_size``, if smaller) are buffered; otherwise the state waits for the next cut."""


class SingerSource(Source):
    """A Singer tap as a source: discover via ``--discover``, read via ``--catalog``/``--state``."""

    name = "singer"
    config_schema = CONFIG_SCHEMA

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._catalog: dict[str, Any] | None = None
        self._open: set[SingerProcess] = set()

    def check(self) -> None:
        self._full_catalog()

    def _process(self) -> SingerProcess:
        proc = SingerProcess(self.config.get("executable"), user_config(self.config), role="tap")
        self._open.add(proc)
        return proc

    def _release(self, proc: SingerProcess) -> None:
        proc.close()
        self._open.discard(proc)

    def _full_catalog(self) -> dict[str, Any]:
        if self._catalog is not None:
            return self._catalog
        if self.config.get("catalog"):
            self._catalog = self.config["catalog"]
            return self._catalog
        proc = self._process()
        try:
            popen = proc.start(["--discover"])
            out = popen.stdout.read()  # type: ignore[union-attr]
            code = proc.wait()
            if code != 0:
                raise proc.failure("discovering streams", code)
            try:
                catalog = json.loads(out.decode("utf-8", errors="replace"))
            except ValueError:
                raise SingerProtocolError(
                    f"the tap {proc.name} printed something other than a JSON catalog for --discover: "
                    f"{proc.snippet(out)!r}. Last stderr lines:\n{proc.tail_text()}",
                    fix="check that the executable is a Singer tap that supports --discover, or give the catalog in the connector config.",
                ) from None
            if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
                raise SingerProtocolError(
                    f"the tap {proc.name} printed a --discover result without a 'streams' list.",
                    fix="give the catalog in the connector config.",
                )
        finally:
            self._release(proc)
        self._catalog = catalog
        return catalog

    def missing_streams(self, streams: list[str]) -> list[str]:
        """Checked against the config's catalog when there is one; a tap's ``--discover`` can take
        seconds (it is run by ``read`` anyway), so without a catalog an unknown name fails at its read."""
        if not self.config.get("catalog"):
            return []
        return super().missing_streams(streams)

    def discover(self, streams: list[str] | None = None) -> dict[str, Any]:
        catalog = self._full_catalog()
        if streams is None:
            return catalog
        return only_streams(catalog, streams)

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        settings = request.settings
        catalog = self._full_catalog()
        entry = entry_for(catalog, settings.stream)
        check_settings(entry, settings)
        names = names_of(entry)
        shape = StreamShape(
            settings.stream,
            columns=settings.columns,
            key_properties=settings.key_properties,
            catalog_entry=entry,
            auto_add_new_fields=settings.auto_add_new_fields,
            validate_records=settings.validate_records,
        )
        proc = self._process()
        spool = _Spool()
        try:
            args = [self.config.get("catalog_flag") or "--catalog"]
            args.append(proc.write_file("catalog.json", selected_catalog(catalog, settings.stream, settings)))
            state = state_for_tap(entry, settings, request.bookmark, request.source_state, request.bookmark_from_user)
            if state is not None:
                args += ["--state", proc.write_file("state.json", state)]
            popen = proc.start(args)
            run = _TapRun(proc, popen.stdout, names, settings.stream)
            schema_msg = run.next_schema()
            shape.update(schema_msg)
            shape.initial_keys()
            for batch in _batches(run, shape, request):
                spool.add(batch)
            shape.finish()
        except BaseException:
            spool.close()
            raise
        finally:
            self._release(proc)
        request.stats["key_properties"] = list(shape.keys)
        assert shape.schema is not None  # update() made one or raised
        return pa.RecordBatchReader.from_batches(shape.schema, _Batches(spool.replay(shape.schema), spool.close))

    def close(self) -> None:
        for proc in list(self._open):
            self._release(proc)


def entry_for(catalog: dict[str, Any], stream: str) -> dict[str, Any]:
    """The catalog entry of ``stream`` or a ConfigError listing the streams there are."""
    entry = find_stream(catalog, stream)
    if entry is None:
        names = ", ".join(repr(n) for n in stream_ids(catalog)) or "(none)"
        raise ConfigError(
            f"the tap has no stream {stream!r}; it offers {names}.",
            stream=stream,
            fix="use one of the tap's stream names (tap_stream_id) as the stream.",
        )
    return entry


def check_settings(entry: dict[str, Any], settings: StreamSettings) -> None:
    """Columns and bookmark properties must exist in the tap's schema."""
    props = entry.get("schema", {}).get("properties", {})
    missing = [c for c in settings.columns or [] if c not in props]
    if missing:
        raise ConfigError(
            f"the tap's stream has no column(s) {', '.join(repr(c) for c in missing)}.",
            stream=settings.stream,
            fix=f"pick columns among: {', '.join(props)}.",
        )
    require_bookmark_properties(
        settings, what="a bookmark property (the tap's replication key)", fix="set bookmark_properties to one column, e.g. [updated_at]."
    )
    if settings.replication_method == INCREMENTAL:
        key = settings.bookmark_properties[0]
        if key not in props:
            raise ConfigError(
                f"the bookmark property {key!r} is not a column of the tap's stream.",
                stream=settings.stream,
                fix=f"pick a bookmark property among: {', '.join(props)}.",
            )


class _TapRun:
    """Reads one tap's stdout message by message, enforcing the protocol."""

    def __init__(self, proc: SingerProcess, stdout: Any, names: set[str], stream: str) -> None:
        self.proc = proc
        self.stdout = stdout
        self.names = names
        self.stream = stream
        self.schemas: set[str | None] = set()  # a SCHEMA message without a stream still counts
        self.early_state: Any = None
        """The last STATE printed before our stream's SCHEMA (it holds with no rows delivered)."""
        self._iter: Iterator[dict[str, Any]] = iter(())

    def messages(self) -> Iterator[dict[str, Any]]:
        """Every message of the tap; raises on malformed lines, records before schema, non-zero exit."""
        for raw in self.stdout:
            try:
                msg = parse_line(raw)
            except ValueError as exc:
                self.proc.kill()
                raise SingerProtocolError(
                    f"the tap {self.proc.name} printed a malformed line ({exc}): {self.proc.snippet(raw)!r}. "
                    f"Last stderr lines:\n{self.proc.tail_text()}",
                    stream=self.stream,
                    fix="a Singer tap must print one JSON message per line on stdout (logs go to stderr); "
                    "check the executable and its config.",
                ) from None
            if msg is None:
                continue
            kind = msg["type"]
            if kind == SCHEMA:
                self.schemas.add(msg.get("stream"))
            elif kind == RECORD and msg.get("stream") not in self.schemas:
                self.proc.kill()
                raise SingerProtocolError(
                    f"the tap {self.proc.name} sent a RECORD for stream {msg.get('stream')!r} before its SCHEMA.",
                    stream=self.stream,
                    fix="this is a bug in the tap; report it to the tap's authors.",
                )
            yield msg
        code = self.proc.wait()
        if code != 0:
            raise self.proc.failure("reading", code, stream=self.stream)

    def next_schema(self) -> dict[str, Any] | None:
        """Advance to the first SCHEMA of our stream; None when the tap ends without one."""
        self._iter = self.messages()
        for msg in self._iter:
            if msg["type"] == SCHEMA and msg.get("stream") in self.names:
                return msg
            if msg["type"] == STATE and msg.get("value") is not None:
                self.early_state = msg["value"]
        return None

    def events(self) -> Iterator[tuple[str, Any]]:
        """``(RECORD, record)`` for our stream's records, ``(SCHEMA, message)`` for its later SCHEMAs and
        ``(STATE, value)`` for every STATE, in the tap's order, after ``next_schema``.  A STATE is the
        whole tap's state, not one stream's."""
        for msg in self._iter:
            if msg["type"] == STATE:
                if msg.get("value") is not None:
                    yield STATE, msg["value"]
                continue
            if msg["type"] == SCHEMA and msg.get("stream") in self.names:
                yield SCHEMA, msg
                continue
            if msg["type"] == RECORD and msg.get("stream") in self.names:
                record = msg.get("record")
                if not isinstance(record, dict):
                    self.proc.kill()
                    raise SingerProtocolError(
                        f"the tap {self.proc.name} sent a RECORD whose 'record' is not an object.",
                        stream=self.stream,
                        fix="this is a bug in the tap; report it to the tap's authors.",
                    )
                yield RECORD, record


def _batches(run: _TapRun, shape: StreamShape, request: ReadRequest) -> Iterator[pa.RecordBatch]:
    """Arrow batches of the tap's records, at most ``limit`` rows; for an INCREMENTAL stream each
    carries (``SOURCE_STATE_KEY``) the last tap STATE that holds once it is delivered.  A SCHEMA
    that changes the stream's shape cuts the rows so far into a batch of the old shape."""
    assert shape.schema is not None
    batcher = RecordBatcher(shape.schema, request.batch_size, request.settings.stream)
    limit = request.limit
    if limit is not None and limit <= 0:
        return
    keep_state = request.settings.replication_method == INCREMENTAL
    cut = _StateCuts(min(STATE_FLUSH_MIN_ROWS, batcher.batch_size))
    cut.pending = run.early_state if keep_state else None
    for kind, payload in run.events():
        if kind == STATE:
            if keep_state:
                yield from cut.state(payload, batcher)
            continue
        if kind == SCHEMA:
            rows = batcher.rows
            if shape.update(payload):
                flushed = batcher.flush()
                if flushed is not None:
                    yield from cut.batch(flushed)
                batcher = RecordBatcher(shape.schema, request.batch_size, request.settings.stream)
                batcher.rows = rows
            continue
        shape.check(payload)
        batch = batcher.add(payload)
        if batch is not None:
            yield from cut.batch(batch)
        if limit is not None and batcher.rows >= limit:
            break
    yield from cut.end(batcher.flush())


class _Spool:
    """The tap's batches on disk until the tap ends, then read back under the stream's final schema.

    Why: a later SCHEMA may add columns or widen types, and a reader's schema is fixed when it is
    handed out; the whole stream is known only when the tap ends.  Batches go to Arrow IPC files
    (one per shape) in a private run folder, with their tap STATEs kept beside them, and come back
    memory-mapped, cast to the final schema (new columns NULL in the rows before them).
    """

    def __init__(self) -> None:
        self._dir: RunDir | None = None
        self._files: list[tuple[str, list[bytes | None]]] = []
        self._writer: Any = None
        self._sink: Any = None
        self._schema: pa.Schema | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        state = (batch.schema.metadata or {}).get(SOURCE_STATE_KEY)
        plain = batch.schema.remove_metadata()
        if self._writer is None or not plain.equals(self._schema, check_metadata=True):
            self._close_writer()
            if self._dir is None:
                self._dir = RunDir("singerspool")
            path = str(self._dir.path / f"{len(self._files)}.arrow")
            self._sink = pa.OSFile(path, "wb")
            self._writer = pa.ipc.new_file(self._sink, plain)
            self._schema = plain
            self._files.append((path, []))
        self._writer.write_batch(batch.replace_schema_metadata(None))
        self._files[-1][1].append(state)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None

    def replay(self, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        self._close_writer()
        for path, states in self._files:
            reader = pa.ipc.open_file(pa.memory_map(path))  # not closed here: batches handed out map it
            for i, state in enumerate(states):
                batch = cast_to(reader.get_batch(i), schema)
                if state is not None:
                    batch = batch.replace_schema_metadata({**(batch.schema.metadata or {}), SOURCE_STATE_KEY: state})
                yield batch

    def close(self) -> None:
        self._close_writer()
        directory, self._dir = self._dir, None
        if directory is not None:
            directory.close()


class _StateCuts:
    """Pairs batches with the tap's STATEs, holding the last batch back.

    ``held`` is the last batch cut (not yet yielded) and ``held_state`` the newest STATE printed
    with no record between the end of ``held`` and it; ``pending`` is the newest STATE printed
    while rows were buffered (or before any row): it goes with the next batch cut.
    """

    def __init__(self, min_rows: int) -> None:
        self.min_rows = min_rows
        self.held: pa.RecordBatch | None = None
        self.held_state: Any = None
        self.pending: Any = None

    def state(self, value: Any, batcher: RecordBatcher) -> Iterator[pa.RecordBatch]:
        if len(batcher) == 0 and self.held is not None:
            self.held_state = value  # nothing since the held batch ended: it holds once that is in
            return
        self.pending = value
        if len(batcher) >= self.min_rows:
            yield from self.batch(batcher.flush())

    def batch(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        if self.held is not None:
            yield _with_source_state(self.held, self.held_state)
        self.held, self.held_state, self.pending = batch, self.pending, None

    def end(self, last: pa.RecordBatch | None) -> Iterator[pa.RecordBatch]:
        if last is not None:
            yield from self.batch(last)
        if self.held is not None:
            yield _with_source_state(self.held, self.held_state)
            self.held = None


def _with_source_state(batch: pa.RecordBatch, state: Any) -> pa.RecordBatch:
    if state is None:
        return batch
    metadata = dict(batch.schema.metadata or {})
    metadata[SOURCE_STATE_KEY] = json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return batch.replace_schema_metadata(metadata)


class _Batches:
    """Iterator handed to Arrow: releases (kills) the tap when exhausted, failed or dropped.

    A plain generator that was never started runs no ``finally`` when dropped,
    so the release also hangs off ``__del__``.
    """

    def __init__(self, gen: Iterator[pa.RecordBatch], release: Any) -> None:
        self._gen = gen
        self._release = release

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> pa.RecordBatch:
        try:
            return next(self._gen)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:
        self.close()
