"""Partitioned reads: one table read as N snapshot-consistent parts over N connections.

Why: one ``COPY (SELECT ...) TO STDOUT`` is one server backend and one client thread decoding; on a
machine with spare cores both sides go faster when the table is read as several parts at once (what
DuckDB's own PostgreSQL scanner does).  The parts must still be *one* read of the table:

- **One snapshot.** The first connection opens a ``REPEATABLE READ`` transaction and exports its
  snapshot (``pg_export_snapshot()``); every other part imports it (``SET TRANSACTION SNAPSHOT``)
  before the first connection reads a row, so all parts see exactly the same committed rows, as one
  query would.  (The id is the server's own text, checked against its format before it is quoted.)
- **Ranges.** With a usable key (one NOT NULL column: the primary key or the stream's single
  ``key_properties``) the parts are key ranges cut at the table's statistics (``pg_stats``
  histogram bounds), or evenly between ``min`` and ``max`` of an integer key the planner has no
  statistics for.  Without one, physical block ranges (``ctid``; PostgreSQL 14+ scans a ctid range
  as a TID range scan, older versions filter).  Bounds reach the server as settings cast to the
  column's type by ``jsonb_populate_record`` (as the bookmark does), never as SQL text.
- **Order of arrival.** Each part runs on a thread; batches go to the destination as they arrive.
  A FULL_TABLE read is still replaced atomically by the destination (it swaps a staging table in
  at the end), so the interleaving is invisible.
- **Bookmarks.** The first sync of an INCREMENTAL stream reads each part in bookmark order; the
  bookmark a batch carries (``BOOKMARK_STATE_KEY``) is the *least advanced* of the unfinished parts
  (every row below it, in every part, has been delivered), ``None`` while some part has delivered
  nothing, and the greatest of all once every part has finished.  Bookmark columns must then be
  numbers, dates or timestamps (compared here as Python values); other types read as one query.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from psycopg import sql

from .._shared.infinity import INFINITY, NEG_INFINITY
from .._shared.row_values import cursor_values
from ..base import BOOKMARK_STATE_KEY, INCREMENTAL, ReadRequest, part_runner
from .connection import PgConfig, render

PART_LO_SETTING = "jupyter_di.part_lo"
PART_HI_SETTING = "jupyter_di.part_hi"
AUTO_BYTES_PER_PART = 64 * 1024 * 1024
"""``partitions: auto`` gives a table one part per this many bytes on disk (``pg_relation_size``),
at most ``auto_max_parts()``: below it one connection's start-up costs more than the part saves."""
_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$")
_QUEUE_DEPTH_PER_PART = 2
MIN_PART_BATCH_BYTES = 1024 * 1024
"""Each part's batches are the single query's size divided by the parts (at least this), so the batches
in flight do not grow with the parts: 5M rows into DuckDB with two parts peaked at 305-308 MB with
4 MB batches, 279-286 MB with 2 MB."""


def auto_max_parts() -> int:
    """``auto`` uses at most one part per core of this machine (at least 2): each part is a
    thread decoding Arrow here and a backend encoding COPY on the server."""
    return max(2, min(16, os.cpu_count() or 2))


@dataclass
class Part:
    """One part: a key range (``key`` set; bounds as JSON text of ``{key: value}``) or a block
    range (``key`` None; bounds as ``(block,0)`` tids); a missing bound is open."""

    index: int
    key: str | None
    lo: str | None
    hi: str | None
    batch_bytes: int = 4 * 1024 * 1024
    """ADBC's batch size hint for this part (``plan_parts``: the parts together hold what one query would)."""

    def condition(self, plan: Any) -> list[sql.Composable]:
        where: list[sql.Composable] = []
        if self.key is not None:
            if self.lo is not None:
                where.append(plan._bound([self.key], PART_LO_SETTING, ">="))
            if self.hi is not None:
                where.append(plan._bound([self.key], PART_HI_SETTING, "<"))
            return where
        ctid = sql.Identifier(plan.schema, plan.table, "ctid")
        if self.lo is not None:
            where.append(sql.SQL("{} >= current_setting({})::tid").format(ctid, sql.Literal(PART_LO_SETTING)))
        if self.hi is not None:
            where.append(sql.SQL("{} < current_setting({})::tid").format(ctid, sql.Literal(PART_HI_SETTING)))
        return where

    def settings(self) -> list[tuple[str, str]]:
        return [(name, value) for name, value in ((PART_LO_SETTING, self.lo), (PART_HI_SETTING, self.hi)) if value is not None]


@dataclass
class PartPlan:
    """How a stream is split: its parts and how (``key`` column, or ``ctid``)."""

    parts: list[Part]
    method: str
    relation_bytes: int
    notes: list[str] = field(default_factory=list)


def wanted_parts(request: ReadRequest, plan: Any, types: dict[str, str], relation_bytes: int) -> tuple[int, str | None]:
    """How many parts a read gets (1: read as one query) and, when fewer than asked, why."""
    setting = request.settings.partitions
    if setting in (None, 1):
        return 1, None
    if request.limit is not None:
        return 1, None  # a sample: one query
    if plan.bookmark_json is not None:
        return 1, None  # reads from a bookmark are the changed rows: one ordered query
    if request.settings.replication_method == INCREMENTAL and not all(
        types.get(c) in _COMPARABLE for c in request.settings.bookmark_properties
    ):
        return 1, "partitions: an INCREMENTAL first sync is split only when its bookmark columns are numbers, dates or timestamps"
    if setting == "auto":
        return max(1, min(auto_max_parts(), math.ceil(relation_bytes / AUTO_BYTES_PER_PART))), None
    return int(setting), None


_COMPARABLE = {"int2", "int4", "int8", "float4", "float8", "numeric", "date", "timestamp", "timestamptz", "oid"}


def _tid_range_scans(conn: Any) -> bool:
    """Whether the server scans a ``ctid`` range as a TID range scan (PostgreSQL 14+).

    Why block ranges first for FULL_TABLE: a key range on the primary key is an index scan; measured
    on 500k of the benchmark's rows, 190 ms of server time against 45 ms for a TID range scan of as
    many rows (1M rows into DuckDB, two parts: the server's CPU 1.00-1.11 s by key, 0.96-0.98 s by
    blocks; DuckDB's own scanner splits by blocks too).  Older servers filter a ctid range over the
    whole table, once per part."""
    return int(conn.fetchall("SELECT current_setting('server_version_num')::int")[0][0]) >= 140000


def relation_bytes(conn: Any, oid: int) -> int:
    return int(conn.fetchall("SELECT pg_relation_size($1::oid)", (oid,))[0][0] or 0)


def split(conn: Any, plan: Any, oid: int, key: str | None, key_type: str | None, n: int) -> PartPlan:
    """Cut the table into ``n`` ranges: by ``key`` from statistics when it can, else by blocks."""
    size = relation_bytes(conn, oid)
    if key is not None:
        bounds: list[Any] | None = _histogram_bounds(conn, plan.schema, plan.table, key, n)
        if bounds is None and key_type in ("int2", "int4", "int8"):
            bounds = _integer_bounds(conn, plan, key, n)
        if bounds:
            edges: list[str | None] = [None, *(json.dumps({key: b}, ensure_ascii=False) for b in bounds), None]
            parts = [Part(i, key, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
            return PartPlan(parts, f"key {key}", size)
    block_size = int(conn.fetchall("SELECT current_setting('block_size')::int")[0][0])
    blocks = max(1, size // block_size)
    cuts = sorted({blocks * i // n for i in range(1, n)} - {0})
    tids: list[str | None] = [None, *(f"({c},0)" for c in cuts), None]
    return PartPlan([Part(i, None, tids[i], tids[i + 1]) for i in range(len(tids) - 1)], "ctid", size)


def _histogram_bounds(conn: Any, schema: str, table: str, key: str, n: int) -> list[str] | None:
    """``n - 1`` cut points from the planner's equal-frequency histogram of ``key`` (as text, cast
    back by the server), or None when the table has never been analyzed."""
    rows = conn.fetchall(
        "SELECT histogram_bounds::text::text[] FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3 "
        "ORDER BY inherited LIMIT 1",
        (schema, table, key),
    )
    if not rows or not rows[0][0]:
        return None
    bounds = list(rows[0][0])
    if len(bounds) < 3:
        return None
    last = len(bounds) - 1
    cuts = [bounds[round(last * i / n)] for i in range(1, n)]
    return list(dict.fromkeys(cuts))  # a heavily repeated value cuts once


def _integer_bounds(conn: Any, plan: Any, key: str, n: int) -> list[int] | None:
    query = sql.SQL("SELECT min({k})::int8, max({k})::int8 FROM {t}").format(k=sql.Identifier(key), t=plan.rel)
    low, high = conn.fetchall(render(query))[0]
    if low is None or high is None or high - low < n:
        return None
    return list(dict.fromkeys(low + (high - low) * i // n for i in range(1, n)))


# -- reading ---------------------------------------------------------------------------------------


def export_snapshot(session: Any) -> str:
    """Start the first part's transaction and export its snapshot for the others."""
    session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    snapshot = str(session.fetchall("SELECT pg_export_snapshot()")[0][0])
    if not _SNAPSHOT_ID.match(snapshot):
        raise RuntimeError(f"unexpected snapshot id from the server: {snapshot!r}")
    return snapshot


def import_snapshot(session: Any, snapshot: str) -> None:
    """Begin a transaction that sees exactly the exported snapshot (before any other statement)."""
    if not _SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    session.execute(render(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot))))


def part_batches(session: Any, plan: Any, part: Part, target: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
    """One part's rows (in the plan's order), on a session already in the shared snapshot."""
    from .read import _stream

    for name, value in part.settings():
        session.fetchall("SELECT set_config($1, $2, true)", (name, value))
    query = plan.query(extra=part.condition(plan))
    yield from _stream(session, render(query), target, batch_size, part.batch_bytes)


def read_part(cfg: PgConfig, snapshot: str, plan: Any, part: Part, target: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
    """One part on a connection of its own (a part run elsewhere: a Dask task); picklable with ``partial``."""
    session = cfg.adbc(autocommit=True)
    try:
        import_snapshot(session, snapshot)
        yield from part_batches(session, plan, part, target, batch_size)
        session.execute("COMMIT")
    finally:
        session.close()


def _read_with_runner(
    runner: Any, cfg: PgConfig, first: Any, plan: Any, parts: PartPlan, target: pa.Schema, request: ReadRequest
) -> Iterator[pa.RecordBatch]:
    """The parts as jobs of ``runner`` (``base.part_runner``: on Dask, one task per part).  ``first``
    only holds the exported snapshot open until every part has finished; each part's batches come
    when the part is complete, parts in the order they complete."""
    from functools import partial

    incremental = request.settings.replication_method == INCREMENTAL
    progress = _Progress(len(parts.parts), list(request.settings.bookmark_properties), target) if incremental else None
    try:
        snapshot = export_snapshot(first)
        jobs = [partial(read_part, cfg, snapshot, plan, part, target, request.batch_size) for part in parts.parts]
        request.stats["partition_runner"] = getattr(runner, "name", type(runner).__name__)

        def arrivals() -> Iterator[tuple[str, int, Any]]:
            for index, batches in runner(jobs):
                for batch in batches:
                    yield "batch", index, batch
                yield "done", index, None

        yield from _bookmarked(progress, arrivals())
    finally:
        first.close()


def _bookmarked(progress: _Progress | None, arrivals: Iterable[tuple[str, int, Any]]) -> Iterator[pa.RecordBatch]:
    """The parts' batches in order of arrival (``("batch", part, batch)``, ``("done", part, None)``).

    With ``progress`` (a first INCREMENTAL sync) each batch is held until the next one arrives or the
    read ends, then stamped with the least advanced unfinished part's bookmark, so no committed
    bookmark passes a row that a slower part has not delivered yet."""
    held: pa.RecordBatch | None = None
    for kind, index, batch in arrivals:
        if kind == "done":
            if progress is not None:
                progress.finish(index)
            continue
        if progress is None:
            yield batch
            continue
        if held is not None:
            yield progress.stamp(held)
        held = batch
        progress.advance(index, batch)
    if held is not None and progress is not None:
        yield progress.stamp(held)


class _Stop(Exception):
    pass


def read_partitioned(
    cfg: PgConfig, first: Any, plan: Any, parts: PartPlan, target: pa.Schema, request: ReadRequest
) -> Iterator[pa.RecordBatch]:
    """All parts' batches as they arrive (threads, one connection each); closes every session.

    ``first`` is the session the read's catalog lookups used: it exports the snapshot and reads
    part 0.  The other sessions import the snapshot before any part starts, while the exporting
    transaction is certainly still open.
    """
    runner = part_runner()
    if runner is not None:
        yield from _read_with_runner(runner, cfg, first, plan, parts, target, request)
        return
    incremental = request.settings.replication_method == INCREMENTAL
    bookmarks = list(request.settings.bookmark_properties) if incremental else []
    sessions = [first]
    events: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH_PER_PART * len(parts.parts))
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        snapshot = export_snapshot(first)
        for _ in parts.parts[1:]:
            session = cfg.adbc(autocommit=True)
            sessions.append(session)
            import_snapshot(session, snapshot)

        def put(item: tuple) -> None:
            while not stop.is_set():
                try:
                    events.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Stop

        def work(part: Part, session: Any) -> None:
            try:
                for batch in part_batches(session, plan, part, target, request.batch_size):
                    put(("batch", part.index, batch))
                session.execute("COMMIT")
                put(("done", part.index, None))
            except _Stop:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
                try:
                    put(("error", part.index, exc))
                except _Stop:
                    pass

        for part, session in zip(parts.parts, sessions):
            thread = threading.Thread(target=work, args=(part, session), name=f"jupyter-di-part-{part.index}", daemon=True)
            threads.append(thread)
            thread.start()
        progress = _Progress(len(parts.parts), bookmarks, target) if bookmarks else None
        started = time.perf_counter()

        def arrivals() -> Iterator[tuple[str, int, Any]]:
            finished = 0
            while finished < len(parts.parts):
                kind, index, payload = events.get()
                if kind == "error":
                    raise payload
                finished += kind == "done"
                yield kind, index, payload

        yield from _bookmarked(progress, arrivals())
        request.stats["partition_seconds"] = time.perf_counter() - started
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for session in sessions:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing after a failure: the first error is what matters
                pass


class _Progress:
    """Per part, the last bookmark it delivered; the bookmark that holds for all parts together."""

    def __init__(self, n: int, columns: list[str], schema: pa.Schema) -> None:
        self.columns = columns
        self.types = {c: schema.field(c).type for c in columns}
        self.last: list[tuple[Any, dict[str, Any]] | None] = [None] * n
        self.done = [False] * n

    def advance(self, index: int, batch: pa.RecordBatch) -> None:
        values, _ = cursor_values(batch, self.columns)
        if values is not None:
            self.last[index] = (self._order(values), values)

    def finish(self, index: int) -> None:
        self.done[index] = True

    def _order(self, values: dict[str, Any]) -> tuple:
        import datetime as dt
        import decimal

        key: list[tuple[int, Any]] = []
        for c in self.columns:
            v, t = values[c], self.types[c]
            if v in (INFINITY, NEG_INFINITY) and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
                key.append((1 if v == INFINITY else -1, 0))  # above / below every finite value
                continue
            if isinstance(v, str) and pa.types.is_timestamp(t):
                v = dt.datetime.fromisoformat(v)
            elif isinstance(v, str) and pa.types.is_date(t):
                v = dt.date.fromisoformat(v)
            elif isinstance(v, str) and pa.types.is_decimal(t):
                v = decimal.Decimal(v)
            key.append((0, v))
        return tuple(key)

    def bookmark(self) -> dict[str, Any] | None:
        if all(self.done):
            seen = [entry for entry in self.last if entry is not None]
            return max(seen, key=lambda e: e[0])[1] if seen else None
        pending = [self.last[i] for i in range(len(self.done)) if not self.done[i]]
        if any(entry is None for entry in pending):
            return None
        return min(pending, key=lambda e: e[0])[1]  # type: ignore[index]

    def stamp(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        metadata = dict(batch.schema.metadata or {})
        metadata[BOOKMARK_STATE_KEY] = json.dumps({"bookmark": self.bookmark()}, default=str).encode()
        return batch.replace_schema_metadata(metadata)


def plan_parts(conn: Any, plan: Any, oid: int, pk: list[str], by_name: dict[str, Any], request: ReadRequest) -> PartPlan | None:
    """The parts a read is split into, or None to read it as one query (``request.stats`` says
    how it was split, for the run's report and the tests)."""
    types = {name: column.typname for name, column in by_name.items()}
    size = relation_bytes(conn, oid) if request.settings.partitions == "auto" else 0
    n, note = wanted_parts(request, plan, types, size)
    if note:
        request.stats.setdefault("notes", []).append(note)
    if n <= 1:
        return None
    keys = list(request.settings.key_properties) or pk
    key = keys[0] if len(keys) == 1 and keys[0] in by_name and by_name[keys[0]].not_null else None
    if request.settings.replication_method != INCREMENTAL and _tid_range_scans(conn):
        key = None  # a FULL_TABLE read has no order: block ranges cost the server least
    parts = split(conn, plan, oid, key, types.get(key) if key else None, n)
    from .read import _BATCH_HINT_BYTES

    for part in parts.parts:
        part.batch_bytes = max(MIN_PART_BATCH_BYTES, _BATCH_HINT_BYTES // len(parts.parts))
    request.stats["partitions"] = len(parts.parts)
    request.stats["partition_method"] = parts.method
    return parts
