"""The Singer adapter: any Singer tap is a jupyter-di source, any Singer target a destination.

Config (``SPEC.config_schema``): ``executable`` (path, or a name on PATH; give
the full path into the tap's own virtualenv), ``config`` (the object the
tap/target gets as its ``--config`` file), optional ``catalog`` (a Singer
catalog used instead of running ``--discover``, for taps whose discovery is
slow or missing), ``catalog_flag`` (``--properties`` for legacy taps) and
``full_table_activate_version``.

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
  (``singer_state``): a classic singer-io tap finds its own bookmarks (epoch
  numbers, ``<stream>_events`` keys) instead of resyncing.  Each read runs the
  tap for one stream, so what is kept per stream is that run's last STATE.
- **Writing is at-least-once.** ``transactional = False``.  After each chunk
  we send ``STATE {"jupyter_di": chunk.state, "jupyter_di_seq": n}``; the
  target echoes a state on stdout once the rows before it are durable, and
  only then do we call ``on_commit``.  Meltano SDK targets echo state only
  when they drain (at the end, every 5 min, on SIGTERM), so ``on_commit`` may
  come only once, at the end.  A target that exits 0 after reading all input
  has committed everything, so a clean exit confirms the last chunk too.
  ``on_commit`` is called from the thread that called ``write`` (between
  chunks and at the end), never from the stdout-reader thread.
- **Table name.** Targets name tables after the stream, so the stream is sent
  as ``settings.table_name``.  Meltano SDK SQL targets split a name on ``-``
  into schema and table (``public-orders`` -> ``orders``).
- **FULL_TABLE.** The Singer way to replace a table is ACTIVATE_VERSION (the
  Stitch/SDK extension): every RECORD carries ``version`` = this run's epoch
  milliseconds and, after the last record, ``ACTIVATE_VERSION`` tells the
  target to retire rows of older versions: deleted when the target's config
  has ``hard_delete: true`` (meltanolabs-target-postgres), otherwise marked in
  ``_sdc_deleted_at``.  The SDK drains the new rows first, so a failure midway
  leaves the old rows in place (next to any new ones already flushed), and a
  rerun never duplicates live rows.  For FULL_TABLE the only STATE is sent
  after ACTIVATE_VERSION, so ``on_commit`` means "replaced".  Targets without
  the extension ignore it (target-jsonl logs a warning) and simply append.
  ``load_method: overwrite`` is NOT added: meltanolabs-target-postgres 0.8.1
  ignores it, and in SDK targets that honour it it drops the table before
  loading (not atomic).  ``full_table_activate_version: false`` turns this off.
- **Upserts.** ``key_properties`` in SCHEMA = ``unique_constraints`` or else the
  stream's ``key_properties``; keyed targets upsert (new row wins).  IGNORE is
  not expressible in Singer and is refused.  New columns are sent as a new
  SCHEMA message; whether they are added is the target's policy.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any, Iterable, Iterator

import pyarrow as pa

from ..errors import ConfigError, DIError
from .base import (
    FULL_TABLE,
    INCREMENTAL,
    SOURCE_STATE_KEY,
    Chunk,
    CommitCallback,
    ConfigField,
    ConnectorSpec,
    Destination,
    ReadRequest,
    Source,
    WriteRequest,
    WriteResult,
)
from .catalog import arrow_field_for_property, json_schema_for_arrow
from .singer_catalog import check_settings, entry_for, selected_catalog
from .singer_messages import (
    RECORD,
    SCHEMA,
    STATE,
    RecordBatcher,
    SingerProtocolError,
    activate_version_line,
    parse_line,
    record_lines,
    schema_line,
    state_line,
)
from .singer_process import SingerProcess, resolve_executable
from .singer_state import state_for_tap

logger = logging.getLogger("jupyter_di.singer")

STATE_WRAPPER_KEY = "jupyter_di"
STATE_SEQ_KEY = "jupyter_di_seq"

STATE_FLUSH_MIN_ROWS = 1000
"""A tap's STATE cuts the buffered rows into a batch only when at least this many (or
``batch_size``, if smaller) are buffered; otherwise the state waits for the next cut."""

CONFIG_SCHEMA = [
    ConfigField("executable", "path", required=True, description="Path of the tap/target executable (or a name on PATH)."),
    ConfigField(
        "config",
        "object",
        default={},
        secret=True,
        description="Object passed as the tap's/target's --config file. Values of keys named like "
        "password/secret/token/key/api are redacted from logs.",
    ),
    ConfigField("catalog", "object", description="Singer catalog to use instead of running --discover."),
    ConfigField("catalog_flag", "string", default="--catalog", description="'--properties' for legacy taps."),
    ConfigField(
        "full_table_activate_version",
        "boolean",
        default=True,
        description="FULL_TABLE writes send ACTIVATE_VERSION so the target retires older rows "
        "(deleted with the target's hard_delete: true).",
    ),
]


def _user_config(config: dict[str, Any]) -> dict[str, Any]:
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ConfigError(
            "the Singer connector's `config` must be an object (the tap's/target's config).",
            fix="write config: as a mapping of the tap's settings.",
        )
    return inner


def _snippet(proc: SingerProcess, line: bytes) -> str:
    return proc.redact(line.decode("utf-8", errors="replace").strip()[:200])


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
        proc = SingerProcess(self.config.get("executable"), _user_config(self.config), role="tap")
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
                    f"{_snippet(proc, out)!r}. Last stderr lines:\n{proc.tail_text()}",
                    fix="check that the executable is a Singer tap that supports --discover, "
                    "or give the catalog in the connector config.",
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
        wanted = set(streams)
        return {
            **catalog,
            "streams": [
                e for e in catalog.get("streams", []) if e.get("tap_stream_id") in wanted or e.get("stream") in wanted
            ],
        }

    def read(self, request: ReadRequest) -> pa.RecordBatchReader:
        settings = request.settings
        catalog = self._full_catalog()
        entry = entry_for(catalog, settings.stream)
        check_settings(entry, settings)
        names = {entry.get("stream"), entry.get("tap_stream_id")} - {None}
        proc = self._process()
        try:
            args = [self.config.get("catalog_flag") or "--catalog"]
            args.append(proc.write_file("catalog.json", selected_catalog(catalog, settings.stream, settings)))
            state = state_for_tap(entry, settings, request.bookmark, request.source_state, request.bookmark_from_user)
            if state is not None:
                args += ["--state", proc.write_file("state.json", state)]
            popen = proc.start(args)
            run = _TapRun(proc, popen.stdout, names, settings.stream)  # type: ignore[arg-type]
            schema_msg = run.next_schema()
            schema = _reader_schema(entry, schema_msg, settings.columns)
        except BaseException:
            self._release(proc)
            raise
        batches = _Batches(_batches(run, schema, request), lambda: self._release(proc))
        return pa.RecordBatchReader.from_batches(schema, batches)

    def close(self) -> None:
        for proc in list(self._open):
            self._release(proc)


def _reader_schema(entry: dict[str, Any], schema_msg: dict[str, Any] | None, columns: list[str] | None) -> pa.Schema:
    """Columns in the stream's order; types from the tap's SCHEMA message, else the catalog."""
    catalog_props = entry.get("schema", {}).get("properties", {})
    msg_props = (schema_msg or {}).get("schema", {}).get("properties", {}) or {}
    if columns is None:
        names = list(msg_props) if msg_props else list(catalog_props)
    else:
        wanted = set(columns)
        order = list(catalog_props) + [c for c in msg_props if c not in catalog_props]
        names = [c for c in order if c in wanted]
    return pa.schema([arrow_field_for_property(n, msg_props.get(n) or catalog_props.get(n) or {}) for n in names])


class _TapRun:
    """Reads one tap's stdout message by message, enforcing the protocol."""

    def __init__(self, proc: SingerProcess, stdout: Any, names: set[str], stream: str) -> None:
        self.proc = proc
        self.stdout = stdout
        self.names = names
        self.stream = stream
        self.schemas: set[str] = set()
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
                    f"the tap {self.proc.name} printed a malformed line ({exc}): {_snippet(self.proc, raw)!r}. "
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
        """``(RECORD, record)`` for our stream's records and ``(STATE, value)`` for every STATE, in the
        tap's order, after ``next_schema``.  A STATE is the whole tap's state, not one stream's."""
        for msg in self._iter:
            if msg["type"] == STATE:
                if msg.get("value") is not None:
                    yield STATE, msg["value"]
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


def _batches(run: _TapRun, schema: pa.Schema, request: ReadRequest) -> Iterator[pa.RecordBatch]:
    """Arrow batches of the tap's records, at most ``limit`` rows; for an INCREMENTAL stream each
    carries (``SOURCE_STATE_KEY``) the last tap STATE that holds once it is delivered."""
    batcher = RecordBatcher(schema, request.batch_size, request.settings.stream)
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
        batch = batcher.add(payload)
        if batch is not None:
            yield from cut.batch(batch)
        if limit is not None and batcher.rows >= limit:
            break
    yield from cut.end(batcher.flush())


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
            yield from self.batch(batcher.flush())  # type: ignore[arg-type]

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

    def __iter__(self) -> "_Batches":
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


class SingerDestination(Destination):
    """A Singer target as a destination: SCHEMA/RECORD/STATE on stdin, states back on stdout."""

    name = "singer"
    config_schema = CONFIG_SCHEMA
    transactional = False

    def check(self) -> None:
        resolve_executable(self.config.get("executable"))

    def write(
        self, request: WriteRequest, chunks: Iterable[Chunk], on_commit: CommitCallback | None = None
    ) -> WriteResult:
        settings = request.settings
        stream = settings.table_name
        if settings.unique_constraints and settings.unique_conflict_method == "IGNORE":
            raise ConfigError(
                "Singer targets cannot keep existing rows on conflict (unique_conflict_method IGNORE).",
                stream=settings.stream,
                fix="use unique_conflict_method UPDATE (new row wins) with a Singer target.",
            )
        keys = list(settings.unique_constraints or settings.key_properties)
        replace = settings.replication_method == FULL_TABLE and self.config.get("full_table_activate_version", True)
        version = time.time_ns() // 1_000_000 if replace else None
        with SingerProcess(self.config.get("executable"), _user_config(self.config), role="target") as proc:
            run = _TargetRun(proc, settings.stream, on_commit)
            last_state: Any = None
            sent_schema: pa.Schema | None = None
            try:
                for chunk in chunks:
                    batch = _with_field_metadata(chunk.batch, request.schema)
                    if sent_schema is None or not batch.schema.equals(sent_schema):
                        run.send(schema_line(stream, _json_schema(batch.schema), keys))
                        sent_schema = batch.schema
                    if batch.num_rows:
                        run.send("".join(record_lines(stream, batch, version)))
                    run.rows += batch.num_rows
                    last_state = chunk.state
                    if not replace:  # a full-table load is only durable once activated
                        run.checkpoint(chunk.state)
                if sent_schema is None:  # no chunks: still declare the stream
                    run.send(schema_line(stream, _json_schema(request.schema), keys))
                if replace:
                    run.send(activate_version_line(stream, version))  # type: ignore[arg-type]
                    run.checkpoint(last_state)
            except BrokenPipeError:
                run.broken = True  # the target stopped reading; its exit code and stderr say why
            except BaseException:
                proc.kill()
                raise
            run.finish()
            rows = run.rows
        return WriteResult(rows_written=rows, state=last_state)


def _with_field_metadata(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch under the request's schema when only field metadata (JSON marks) differ."""
    if batch.schema.equals(schema, check_metadata=True) or not batch.schema.equals(schema, check_metadata=False):
        return batch
    return pa.RecordBatch.from_arrays(batch.columns, schema=schema)


class _TargetRun:
    """One target process being fed: sends lines, numbers our STATEs, reports confirmations.

    A stdout-reader thread queues the sequence numbers of our states as the
    target echoes them; ``deliver`` turns them into ``on_commit`` calls on the
    writing thread, in order.
    """

    def __init__(self, proc: SingerProcess, stream: str, on_commit: CommitCallback | None) -> None:
        self.proc = proc
        self.stream = stream
        self.on_commit = on_commit
        self.popen = proc.start([], stdin=True)
        self.rows = 0
        self.seq = 0
        self.broken = False
        self._sent: dict[int, tuple[int, Any]] = {}  # seq -> (rows so far, state)
        self._confirmed = 0
        self._queue: queue.Queue[int] = queue.Queue()
        self._reader = threading.Thread(target=self._read_states, name=f"singer-stdout-{proc.name}", daemon=True)
        self._reader.start()

    def send(self, text: str) -> None:
        self.popen.stdin.write(text.encode("utf-8"))  # type: ignore[union-attr]
        self.popen.stdin.flush()  # type: ignore[union-attr]

    def checkpoint(self, state: Any) -> None:
        """Send our STATE for everything sent so far, then report any confirmations."""
        self.seq += 1
        self._sent[self.seq] = (self.rows, state)
        self.send(state_line({STATE_WRAPPER_KEY: state, STATE_SEQ_KEY: self.seq}))
        self.deliver()

    def deliver(self) -> None:
        while True:
            try:
                done = self._queue.get_nowait()
            except queue.Empty:
                return
            if done > self._confirmed and done in self._sent:
                self._confirmed = done
                if self.on_commit is not None:
                    self.on_commit(*self._sent[done])

    def finish(self) -> None:
        """Close stdin, wait, raise on failure; a clean exit confirms the last state."""
        if not self.broken:
            try:
                self.popen.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                self.broken = True
        code = self.proc.wait()
        self._reader.join(timeout=10)
        self.deliver()
        if code != 0:
            raise self.proc.failure("writing", code, stream=self.stream)
        if self.broken:
            raise SingerProtocolError(
                f"the target {self.proc.name} exited before reading all its input.",
                stream=self.stream,
                fix="read the target's log (logger jupyter_di.singer); the rows may be incomplete.",
            )
        self._queue.put(self.seq)  # exit 0 after end of input: everything sent is durable
        self.deliver()

    def _read_states(self) -> None:
        """Thread: every state line of ours the target prints is a commit confirmation."""
        for raw in self.popen.stdout:  # type: ignore[union-attr]
            try:
                value = json.loads(raw)
            except ValueError:
                logger.debug("%s stdout: %s", self.proc.name, _snippet(self.proc, raw))
                continue
            if isinstance(value, dict) and isinstance(value.get(STATE_SEQ_KEY), int) and STATE_WRAPPER_KEY in value:
                self._queue.put(value[STATE_SEQ_KEY])


def _json_schema(schema: pa.Schema) -> dict[str, Any]:
    return {"type": "object", "properties": {f.name: json_schema_for_arrow(f.type, f) for f in schema}}


SPEC = ConnectorSpec(
    name="singer",
    title="Singer tap / target",
    config_schema=CONFIG_SCHEMA,
    source=SingerSource,
    destination=SingerDestination,
    description="Runs any Singer tap as a source or any Singer target as a destination "
    "(each in its own virtualenv; give the executable's full path).",
)

__all__ = ["SPEC", "SingerSource", "SingerDestination", "DIError"]
