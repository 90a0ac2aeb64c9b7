"""A Singer target as a destination: SCHEMA/RECORD/STATE on its stdin, its confirmations on stdout.

Semantics, where Singer differs from our built-in connectors:

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
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ...errors import ConfigError
from .._shared.singer_messages import SingerProtocolError, activate_version_line, record_lines, schema_line, state_line
from ..base import FULL_TABLE, Chunk, CommitCallback, Destination, WriteRequest, WriteResult
from ..catalog import json_schema_for_arrow
from .config import CONFIG_SCHEMA, user_config
from .process import SingerProcess, resolve_executable

logger = logging.getLogger("jupyter_di.singer")

STATE_WRAPPER_KEY = "jupyter_di"
STATE_SEQ_KEY = "jupyter_di_seq"


class SingerDestination(Destination):
    """A Singer target as a destination: SCHEMA/RECORD/STATE on stdin, states back on stdout."""

    name = "singer"
    config_schema = CONFIG_SCHEMA
    transactional = False

    def check(self) -> None:
        resolve_executable(self.config.get("executable"))

    def write(self, request: WriteRequest, chunks: Iterable[Chunk], on_commit: CommitCallback | None = None) -> WriteResult:
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
        with SingerProcess(self.config.get("executable"), user_config(self.config), role="target") as proc:
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
                logger.debug("%s stdout: %s", self.proc.name, self.proc.snippet(raw))
                continue
            if isinstance(value, dict) and isinstance(value.get(STATE_SEQ_KEY), int) and STATE_WRAPPER_KEY in value:
                self._queue.put(value[STATE_SEQ_KEY])


def _json_schema(schema: pa.Schema) -> dict[str, Any]:
    return {"type": "object", "properties": {f.name: json_schema_for_arrow(f.type, f) for f in schema}}
