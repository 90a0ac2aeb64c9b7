"""LOG_BASED reads of a PostgreSQL table: the initial snapshot, then its changes from the slot.

A stream's first run (no saved position) creates its slot, reads the table in the snapshot the slot
exported (plain rows, like FULL_TABLE: the destination replaces the table) and ends at the slot's
consistent point.  Later runs read the decoded changes after the saved position up to the WAL
position current at the start of the run, as *change rows* (``base.CHANGE_OP_COLUMN``...), in commit
order.  Every batch carries the position that holds once it is delivered (``BOOKMARK_STATE_KEY``, the
stream's bookmark ``{"lsn": ...}``), which the destination commits with the rows.

Why values go back to the server: ``pgoutput`` sends each value as its type's text.  Instead of a
text parser per type in Python, the common types (integers, floats, text, numerics, booleans,
dates, timestamps) are parsed by Arrow's casts (``text_values``), and the others are copied (binary
COPY, through ADBC) into a temporary table of text columns and selected back cast to the table's
own column types, with the same select expressions a snapshot read uses, so snapshot rows and
change rows are the same Arrow values for every type (enums, domains, arrays, ranges included).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from psycopg import sql

from ...errors import ConfigError
from .._shared.arrow_build import int64_array, text_array, utf8_array
from ..base import (
    BOOKMARK_STATE_KEY,
    CHANGE_OP_COLUMN,
    CHANGE_TIME_COLUMN,
    CHANGE_UNCHANGED_COLUMN,
    FULL_TABLE,
    SOURCE_STATE_KEY,
    ReadRequest,
    change_fields,
    internal_name,
)
from . import pgoutput as po
from . import replication as rep
from .connection import PgConfig, render
from .encoding import RAW, check_utf8
from .read import _batches, _plan, _require, _stream
from .text_values import SESSION_SETTINGS, text_to_arrow
from .types import PgColumn, primary_keys, table_columns

log = logging.getLogger(__name__)

CHUNK_CHANGES = 20_000
"""Changes decoded, staged and typed per round trip (memory: a few MB of text per chunk)."""
READ_BATCH_BYTES = 1024 * 1024
"""The slot's messages arrive in Arrow batches of about this size (ADBC's COPY batches, held outside
Arrow's pool while they are decoded): 2 MB batches took the DuckDB run's peak 10 MB higher, 8 MB 50 MB higher."""
SEQ = "_jupyter_di_seq"


def lsn_bookmark(value: Any) -> int:
    """A saved or typed ``lsn`` bookmark as a position (``'16/B374D848'`` or a number)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return po.parse_lsn(str(value))


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    """A batch without rows: it carries the position when a run has no rows to deliver."""
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def _metadata(schema: pa.Schema, position: int, source_state: dict[str, Any]) -> dict[bytes, bytes]:
    meta = dict(schema.metadata or {})
    meta[BOOKMARK_STATE_KEY] = json.dumps({"bookmark": {"lsn": po.format_lsn(position)}}).encode()
    meta[SOURCE_STATE_KEY] = json.dumps(source_state).encode()
    return meta


def read_log_based(source: Any, request: ReadRequest) -> pa.RecordBatchReader:
    """The LOG_BASED read of one stream (``source`` is the PostgresSource: its config and resolver)."""
    cfg: PgConfig = source._cfg
    s = request.settings
    conn = cfg.psycopg()
    try:
        cur = conn.cursor()  # the catalog helpers take a psycopg cursor
        schema, table, oid = source._resolve(cur, s.stream)
        cols = table_columns(cur, [oid])[oid]
        by_name = {c.name: c for c in cols}
        if s.columns:
            _require(by_name, list(s.columns), "selected column", s.stream, "remove it from columns or run discovery again")
        if s.key_properties:
            _require(by_name, list(s.key_properties), "key column", s.stream, "pick key_properties among the table's columns")
        rep.check_server(conn, s.stream)
        keys = rep.replica_key(conn, schema, table, oid, primary_keys(cur, [oid])[oid], list(s.key_properties), s.stream)
        slot = rep.slot_name(cfg.slot_name, request.state_key, s.stream)
        publication = cfg.publication or slot
        state = {"slot": slot, "publication": publication}
        saved = (request.source_state or {}) if isinstance(request.source_state, dict) else {}
        request.stats["key_properties"] = keys
        try:
            position = lsn_bookmark(request.bookmark["lsn"]) if request.bookmark and request.bookmark.get("lsn") is not None else None
        except ValueError as exc:
            raise ConfigError(
                f"bookmark: {exc}.", stream=s.stream, fix="give the position like 0/16B3748, or reset the stream's state."
            ) from None
        info = rep.slot_info(conn, slot)
        warnings: list[str] = request.stats.setdefault("notes", [])  # the run report's lines (not changes missed)
        if position is not None and saved.get("slot") not in (None, slot):
            warnings.append(
                f"the stream's slot is now {slot!r} (was {saved['slot']!r}): a new snapshot is read. If nothing else uses "
                f"{saved['slot']!r}, drop it: SELECT pg_drop_replication_slot('{saved['slot']}')."
            )
            position = None
        if position is not None and (info is None or info.lost):
            why = "no longer exists" if info is None else "was invalidated by the server (max_slot_wal_keep_size)"
            warnings.append(
                f"replication slot {slot!r} {why}: the changes since {po.format_lsn(position)} are gone, so a new snapshot replaces the table."
            )
            position = None
        _warn_retained(conn, slot, cfg.slot_retained_warn_mb, warnings)
        columns = [c.name for c in cols if not s.columns or c.name in s.columns or c.name in keys]
        if position is None:
            return _snapshot(cfg, conn, request, schema, table, oid, cols, keys, columns, slot, publication, state)
        assert info is not None
        if info.confirmed_flush is not None and position < info.confirmed_flush:
            raise ConfigError(
                f"replication slot {slot!r} has already confirmed up to {po.format_lsn(info.confirmed_flush)}; the changes "
                f"before it, from the bookmark {po.format_lsn(position)}, are no longer available.",
                stream=s.stream,
                fix=f"give a position at or after {po.format_lsn(info.confirmed_flush)}, or reset the stream's state to read a new snapshot.",
            )
        upto = rep.current_lsn(conn)
        if position > upto:
            raise ConfigError(
                f"the bookmark {po.format_lsn(position)} is ahead of the server's WAL ({po.format_lsn(upto)}).",
                stream=s.stream,
                fix="give a position the server has reached (SELECT pg_current_wal_lsn()), or reset the stream's state.",
            )
        rep.advance(conn, slot, position)
    except BaseException:
        conn.close()
        raise
    target = pa.schema([by_name[n].arrow_field() for n in columns] + change_fields())
    changes = _Changes(
        cfg, conn, target, [by_name[n] for n in columns], keys, oid, slot, publication, upto, position, state, request.batch_size
    )
    return pa.RecordBatchReader.from_batches(target, changes.batches())


def _warn_retained(conn: Any, slot: str, limit_mb: int, warnings: list[str]) -> None:
    """Slots holding more WAL than ``limit_mb``: this stream's (it is read too rarely), and others this
    connector named that no run reads any more (abandoned: the server keeps their WAL forever)."""
    if limit_mb <= 0:
        return
    for info in rep.our_slots(conn):
        mb = (info.retained_bytes or 0) / 1e6
        if mb <= limit_mb:
            continue
        if info.name == slot:
            warnings.append(f"replication slot {slot!r} retains {mb:,.0f} MB of WAL on the server (more than slot_retained_warn_mb).")
        elif not info.active:
            warnings.append(
                f"replication slot {info.name!r} retains {mb:,.0f} MB of WAL and no run read it: if its pipeline is gone, "
                f"drop it (jupyter-di slots drop, or SELECT pg_drop_replication_slot('{info.name}'))."
            )


# -- the initial snapshot ------------------------------------------------------------------------


def _snapshot(
    cfg: PgConfig,
    conn: Any,
    request: ReadRequest,
    schema: str,
    table: str,
    oid: int,
    cols: list[PgColumn],
    keys: list[str],
    columns: list[str],
    slot: str,
    publication: str,
    state: dict[str, Any],
) -> pa.RecordBatchReader:
    """Publication, a new slot, and the table read in the snapshot the slot exported."""
    import dataclasses

    s = request.settings
    rep.drop_slot(conn, slot)  # a slot left by a snapshot that never committed, or by a reset
    rep.ensure_publication(conn, publication, bool(cfg.publication), schema, table, oid, s.stream)
    exported = rep.ExportedSnapshot(cfg.conninfo(), slot)
    conn.close()
    session = None
    try:
        session = cfg.adbc(autocommit=False)
        session.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        session.execute(render(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(exported.snapshot))))
        by_name = {c.name: c for c in cols}
        plain = dataclasses.replace(s, replication_method=FULL_TABLE, columns=columns, key_properties=keys)
        plan = _plan(schema, table, cols, by_name, keys, dataclasses.replace(request, settings=plain, bookmark=None))
    except BaseException:
        if session is not None:
            session.close()
        exported.close()
        raise
    target = pa.schema([by_name[n].arrow_field() for n in plan.columns])
    meta = _metadata(target, exported.consistent_point, state)

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            held = None
            for batch in _batches(session, plan, target, request.batch_size, 0):
                if held is not None:
                    yield held
                held = batch
            last = held if held is not None else _empty(target)
            yield last.replace_schema_metadata(meta)
        finally:
            exported.close()

    return pa.RecordBatchReader.from_batches(target, batches())


# -- changes -------------------------------------------------------------------------------------


OPS = ("insert", "update", "delete", "truncate")


class _Rows:
    """Decoded change rows of one stretch: text values per stream column, in message order (``seq``)."""

    def __init__(self, seq: np.ndarray, ops: np.ndarray, times: np.ndarray, values: list[pa.Array], unchanged: list[np.ndarray | None]):
        self.seq, self.ops, self.times, self.values, self.unchanged = seq, ops, times, values, unchanged


class _Changes:
    """The slot's changes of one table as typed change batches.

    The decoded messages arrive as Arrow binary batches (ADBC streams the peek query), so the
    framing of most messages is never touched by Python: inserts, updates without an old row and
    deletes of this table are split into columns with numpy (``pgoutput.split_tuples``); Python
    handles the few others (begin, commit, relation, truncate, an update that carries its old key).
    """

    def __init__(
        self,
        cfg: PgConfig,
        conn: Any,
        target: pa.Schema,
        cols: list[PgColumn],
        keys: list[str],
        oid: int,
        slot: str,
        publication: str,
        upto: int,
        position: int,
        state: dict[str, Any],
        batch_size: int,
    ) -> None:
        self.cfg, self.conn, self.target, self.cols, self.keys, self.oid = cfg, conn, target, cols, keys, oid
        self.slot, self.publication, self.upto, self.position, self.state = slot, publication, upto, position, state
        self.batch_size = batch_size
        self.names = [c.name for c in cols]
        self.key_index = [self.names.index(k) for k in keys]
        self.mapping: list[int] | None = None  # stream column -> index in the relation's tuples (-1: not sent)
        self.ncols = 0
        self.commit_time = 0  # of the transaction being read
        self.done = position  # the end of the last transaction whose changes are all delivered
        self.pending: list[_Rows] = []
        self.pending_rows = 0
        self.base = 0  # messages of earlier batches (a message's place in the read orders its rows)
        self.stages: set[str] = set()  # temporary tables made for the server's casts
        self.session: Any = None
        self.encoding: str | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager

        reader_session = None
        try:
            self.encoding = self.conn.execute(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
            ).fetchone()[0]
            self.conn.close()
            reader_session = self.cfg.adbc(autocommit=True)
            for setting in SESSION_SETTINGS:  # the decoder formats values with the reading session's settings
                reader_session.execute(setting)
            stmt = None
            try:
                reader, stmt = reader_session.stream(render(rep.peek_query(self.slot, self.upto, self.publication)), READ_BATCH_BYTES)
                for batch in reader:
                    self._decode(batch.column(0))
                    if self.pending_rows >= CHUNK_CHANGES:
                        yield from self._flush(self.done)
            except adbc_driver_manager.Error as exc:
                raise ConfigError(
                    f"reading the changes of replication slot {self.slot!r} failed: {str(exc).strip().splitlines()[0]}",
                    fix="check that the publication still exists and includes the table; reset the stream's state to start over.",
                ) from None
            finally:
                if stmt is not None:
                    stmt.close()
            yield from self._flush(max(self.done, self.upto), final=True)
        finally:
            for session in (self.session, reader_session):
                if session is not None:
                    session.close()
            self.conn.close()

    # -- decoding ---------------------------------------------------------------------------------

    def _relation(self, rel: po.Relation) -> None:
        index = {c.name: i for i, c in enumerate(rel.columns)}
        self.mapping = [index.get(n, -1) for n in self.names]
        self.ncols = len(rel.columns)

    def _decode(self, messages: pa.Array) -> None:
        """One Arrow batch of messages into pending rows (and the positions of its commits)."""
        if isinstance(messages, pa.ChunkedArray):
            messages = messages.combine_chunks()
        if isinstance(messages.type, pa.BaseExtensionType):
            messages = messages.storage
        n = len(messages)
        if n == 0:
            return
        bufs = messages.buffers()
        width = np.int64 if pa.types.is_large_binary(messages.type) else np.int32
        offsets = np.frombuffer(bufs[1], dtype=width)[messages.offset : messages.offset + n + 1].astype(np.int64)
        data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
        starts = offsets[:-1]
        first = data[starts]
        is_row = (first == 0x49) | (first == 0x55) | (first == 0x44)
        ours = np.zeros(n, dtype=bool)
        if is_row.any():
            rows_at = np.flatnonzero(is_row)
            ours[rows_at] = po.be_uint32(data, starts[rows_at] + 1) == self.oid
        with_old = ours & (first == 0x55) & (data[np.minimum(starts + 5, len(data) - 1)] != 0x4E)
        fast = ours & ~with_old
        events = np.flatnonzero(~is_row | with_old)
        raw = bytes(memoryview(bufs[2])) if len(events) else b""
        times = np.empty(n, dtype=np.int64)
        mark = 0  # messages before this have their commit time
        cut = 0  # fast rows before this are decoded (with the mapping in force there)
        slow: list[tuple[int, str, tuple, int]] = []  # (seq, op, values, commit time)
        for i in events.tolist():
            message = po.decode(raw[offsets[i] : offsets[i + 1]])
            if isinstance(message, po.Begin):
                times[mark:i] = self.commit_time
                mark = i
                self.commit_time = message.commit_time
            elif isinstance(message, po.Commit):
                self.done = message.end_lsn
            elif isinstance(message, po.Relation) and message.oid == self.oid:
                times[mark:i] = self.commit_time
                mark = i
                self._fast_rows(data, starts, first, fast[cut:i], cut, times)
                cut = i
                self._relation(message)
            elif isinstance(message, po.Truncate):
                if self.oid in message.relations:
                    slow.append((self._seq(i), "truncate", (None,) * len(self.names), self.commit_time))
            elif isinstance(message, po.Update) and self.mapping is not None:
                for j, (op, values) in enumerate(self._old_row_update(message)):
                    slow.append((self._seq(i) + j, op, values, self.commit_time))
        times[mark:n] = self.commit_time
        self._fast_rows(data, starts, first, fast[cut:n], cut, times)
        if slow:
            self._slow_rows(slow)
        self.base += n

    def _seq(self, i: int) -> int:
        """A message's place in the whole read (two places each: an update that changes the key is a
        delete and an update)."""
        return 2 * (self.base + i)

    def _fast_rows(self, data: np.ndarray, starts: np.ndarray, first: np.ndarray, fast: np.ndarray, lo: int, times: np.ndarray) -> None:
        index = np.flatnonzero(fast) + lo
        if len(index) == 0:
            return
        if self.mapping is None:
            raise ConfigError(f"the change log sent rows of table oid {self.oid} before describing it.", fix="reset the stream's state.")
        columns = po.split_tuples(data, starts[index] + 6, self.ncols)
        values: list[pa.Array] = []
        unchanged: list[np.ndarray | None] = []
        for name, source in zip(self.names, self.mapping):
            if source < 0:  # not in the log's row (a column added since): kept as the destination has it
                values.append(pa.nulls(len(index), pa.string()))
                unchanged.append(np.ones(len(index), dtype=bool))
                continue
            kinds, value_starts, lengths = columns[source]
            sent = (kinds == po.KIND_TEXT) | (kinds == po.KIND_BINARY)
            values.append(self._text(_gather(data, value_starts, lengths, sent), name))
            same = kinds == po.KIND_UNCHANGED
            unchanged.append(same if same.any() else None)
        codes = first[index]
        ops = np.where(codes == 0x49, 0, np.where(codes == 0x55, 1, 2)).astype(np.int8)
        inserts = ops == 0
        unchanged = [None if u is None else (u & ~inserts) for u in unchanged]  # an insert sends every value
        self._add(_Rows(2 * (self.base + index.astype(np.int64)), ops, times[index].copy(), values, unchanged))

    def _old_row_update(self, message: po.Update) -> list[tuple[str, tuple]]:
        assert self.mapping is not None
        new = tuple(message.new[i] if i >= 0 else po.UNCHANGED for i in self.mapping)
        out = []
        if message.old is not None:
            old = tuple(message.old[i] if i >= 0 else po.UNCHANGED for i in self.mapping)
            if not message.old_is_key:  # REPLICA IDENTITY FULL: the old row fills what the new one left out
                new = tuple(o if v is po.UNCHANGED and o is not po.UNCHANGED else v for v, o in zip(new, old))
            if any(old[i] != new[i] for i in self.key_index):  # the key changed: the old row goes
                out.append(("delete", tuple(old[i] if i in self.key_index else None for i in range(len(old)))))
        out.append(("update", new))
        return out

    def _slow_rows(self, slow: list[tuple[int, str, tuple, int]]) -> None:
        n = len(slow)
        seq = np.fromiter((s for s, _, _, _ in slow), dtype=np.int64, count=n)
        ops = np.fromiter((OPS.index(op) for _, op, _, _ in slow), dtype=np.int8, count=n)
        times = np.fromiter((t for _, _, _, t in slow), dtype=np.int64, count=n)
        values, unchanged = [], []
        for c in range(len(self.names)):
            column = [row[c] for _, _, row, _ in slow]
            same = np.fromiter((v is po.UNCHANGED for v in column), dtype=bool, count=n)
            values.append(self._text(utf8_array([None if v is po.UNCHANGED else v for v in column]), self.names[c]))
            unchanged.append(same if same.any() else None)
        self._add(_Rows(seq, ops, times, values, unchanged))

    def _add(self, rows: _Rows) -> None:
        self.pending.append(rows)
        self.pending_rows += len(rows.seq)

    # -- typing a chunk on the server -------------------------------------------------------------

    def _flush(self, position: int, final: bool = False) -> Iterator[pa.RecordBatch]:
        pending, self.pending, self.pending_rows = self.pending, [], 0
        meta = _metadata(self.target, position, self.state)
        if not pending:
            if final or position > self.position:
                yield _empty(self.target).replace_schema_metadata(meta)
            self.position = position
            return
        seq = np.concatenate([p.seq for p in pending])
        order = np.argsort(seq, kind="stable")
        take = int64_array(order)
        n = len(seq)
        values = [pa.concat_arrays([p.values[c] for p in pending]).take(take) for c in range(len(self.names))]
        ops = np.concatenate([p.ops for p in pending])[order]
        times = np.concatenate([p.times for p in pending])[order]
        masks: list[np.ndarray] = []
        for c in range(len(self.names)):
            parts: list[np.ndarray] = [np.zeros(len(p.seq), dtype=bool) if p.unchanged[c] is None else p.unchanged[c] for p in pending]  # type: ignore[misc]
            masks.append(np.concatenate(parts)[order])
        del pending
        arrays = self._typed(values, n) + _change_arrays(ops, times, masks, self.names)
        del values
        step = max(1, self.batch_size)
        for start in range(0, n, step):
            batch = pa.RecordBatch.from_arrays([a.slice(start, step) for a in arrays], schema=self.target)
            yield batch.replace_schema_metadata(meta) if start + step >= n else batch
        self.position = position

    def _typed(self, values: list[pa.Array], n: int) -> list[pa.Array]:
        """The text values as the columns' Arrow types: the common types cast here
        (``text_values``), the others by the server (see the module docstring)."""
        typed: list[pa.Array | None] = [text_to_arrow(v, c, self.target.field(c.name).type) for v, c in zip(values, self.cols)]
        server = [i for i, t in enumerate(typed) if t is None]
        if server:
            for i, array in zip(server, self._server_typed([values[i] for i in server], [self.cols[i] for i in server], n)):
                typed[i] = array
        if any(t is None for t in typed):
            raise RuntimeError("a column of the changes was not typed")
        return typed

    def _server_typed(self, values: list[pa.Array], cols: list[PgColumn], n: int) -> list[pa.Array]:
        """Text values cast by the server through a temporary table of text columns."""
        names = [c.name for c in cols]
        stage = internal_name("changes", str(self.oid), ",".join(names))
        if self.session is None:
            self.session = self.cfg.adbc(autocommit=True)
        if stage not in self.stages:
            defs = sql.SQL(", ").join(
                [sql.SQL("{} int8").format(sql.Identifier(SEQ))] + [sql.SQL("{} text").format(sql.Identifier(c)) for c in names]
            )
            self.session.execute(render(sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(stage), defs)))
            self.stages.add(stage)
        batch = pa.RecordBatch.from_arrays([int64_array(np.arange(n)), *values], names=[SEQ, *names])
        self.session.execute(render(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage))))
        self.session.ingest(stage, batch, temporary=True)
        casts = sql.SQL(", ").join(
            [sql.Identifier(SEQ)]
            + [sql.SQL("CAST({} AS {}) AS {}").format(sql.Identifier(c.name), sql.SQL(c.sql_type), sql.Identifier(c.name)) for c in cols]
        )
        exprs = sql.SQL(", ").join(c.read_expression() for c in cols)
        query = sql.SQL("SELECT {} FROM (SELECT {} FROM {}) AS s ORDER BY {}").format(
            exprs, casts, sql.Identifier(stage), sql.Identifier(SEQ)
        )
        plain = pa.schema([self.target.field(c) for c in names])
        batches = list(_stream(self.session, render(query), plain, max(n, self.batch_size)))
        table = pa.Table.from_batches(batches, schema=plain)
        if table.num_rows != n:
            raise RuntimeError(f"typed {table.num_rows} of {n} changes")
        return [table.column(i).combine_chunks() for i in range(len(names))]

    def _text(self, values: pa.Array, column: str) -> pa.Array:
        """A column's text as sent: UTF-8 (the session's client encoding, ``encoding``), except from a
        SQL_ASCII database, whose bytes arrive as stored and are checked."""
        if self.encoding == RAW:
            check_utf8(values, column)
        return values


GATHER_BYTES = 1 << 20
"""Bytes gathered per step (the step's index arrays are 8 bytes per byte: bounded, not per batch)."""


def _gather(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A string array of the byte ranges (``starts``, ``lengths``) of ``data``; null where not ``valid``."""
    n = len(starts)
    lengths = np.where(valid, lengths, 0)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    body = np.empty(total, dtype=np.uint8)
    if total:
        # rows in steps of about GATHER_BYTES: the byte index of a step is built, used and dropped
        cuts = np.searchsorted(offsets, np.arange(0, total, GATHER_BYTES), side="right") - 1
        bounds = [*np.unique(cuts).tolist(), n]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            a, b = int(offsets[lo]), int(offsets[hi])
            if b > a:
                index = np.repeat(starts[lo:hi] - offsets[lo:hi], lengths[lo:hi])
                index += np.arange(a, b, dtype=np.int64)
                body[a:b] = data[index]
    null_count = int(n - valid.sum())
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if null_count else None
    if total < 2**31:
        return pa.Array.from_buffers(
            pa.string(), n, [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(body)], null_count=null_count
        )
    return pa.Array.from_buffers(pa.large_string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(body)], null_count=null_count)


def _change_arrays(ops: np.ndarray, times: np.ndarray, unchanged: list[np.ndarray], names: list[str]) -> list[pa.Array]:
    """The change columns (op, commit time, unchanged columns) of a chunk."""
    op = text_array(list(OPS)).take(int64_array(ops.astype(np.int64)))
    when = int64_array(times + po.PG_EPOCH_MICROS).view(pa.timestamp("us", tz="UTC"))
    stacked = np.vstack(unchanged) if unchanged else np.zeros((0, len(ops)), dtype=bool)
    rows = np.flatnonzero(stacked.any(axis=0)) if len(stacked) else np.empty(0, np.int64)
    if len(rows) == 0:
        return [op, when, pa.nulls(len(ops), pa.list_(pa.string()))]
    per_row: list[list[str] | None] = [None] * len(ops)
    for r in rows.tolist():
        per_row[r] = [names[c] for c in np.flatnonzero(stacked[:, r]).tolist()]
    flat = [name for u in per_row if u for name in u]
    offsets = np.zeros(len(per_row) + 1, dtype=np.int32)
    np.cumsum([len(u) if u else 0 for u in per_row], out=offsets[1:])
    valid = np.fromiter((u is not None for u in per_row), dtype=bool, count=len(per_row))
    lists = pa.ListArray.from_arrays(
        pa.Array.from_buffers(pa.int32(), len(offsets), [None, pa.py_buffer(offsets)]),
        text_array(flat),
        mask=pa.Array.from_buffers(pa.bool_(), len(valid), [None, pa.py_buffer(np.packbits(~valid, bitorder="little"))]),
    )
    return [op, when, lists]


__all__ = ["read_log_based", "lsn_bookmark", "CHANGE_OP_COLUMN", "CHANGE_TIME_COLUMN", "CHANGE_UNCHANGED_COLUMN"]
