"""LOG_BASED reads of a PostgreSQL table: the initial snapshot, then its changes from the slot.

A stream's first run (no saved position) creates its slot, reads the table in the snapshot the slot
exported (plain rows, like FULL_TABLE: the destination replaces the table) and ends at the slot's
consistent point.  Later runs read the decoded changes after the saved position up to the WAL
position current at the start of the run, as *change rows* (``base.CHANGE_OP_COLUMN``...), in commit
order.  Every batch carries the position that holds once it is delivered (``BOOKMARK_STATE_KEY``, the
stream's bookmark ``{"lsn": ...}``), which the destination commits with the rows.

Why values go back to the server: ``pgoutput`` sends each value as its type's text.  Instead of a
text parser per type in Python, a chunk of changes is copied (binary COPY, through ADBC) into a
temporary table of text columns and selected back cast to the table's own column types, with the
same select expressions a snapshot read uses, so snapshot rows and change rows are the same Arrow
values for every type (enums, domains, arrays, ranges included).  Python decodes only the framing.
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
from .read import _batches, _plan, _require, _stream
from .types import PgColumn, primary_keys, table_columns

log = logging.getLogger(__name__)

CHUNK_CHANGES = 50_000
"""Changes decoded, staged and typed per round trip (memory: a few MB of text per chunk)."""
FETCH_ROWS = 10_000
"""Messages per fetch from the server-side cursor over the slot's changes."""
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


class _Changes:
    """Decode the slot's changes for one table into typed change batches."""

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
        self.rows: list[tuple] = []
        self.ops: list[str] = []
        self.times: list[int] = []
        self.unchanged: list[list[str] | None] = []
        self.stage = internal_name("changes", str(oid), ",".join(self.names))
        self.session: Any = None
        self.encoding: str | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        import psycopg

        try:
            self.encoding = self.conn.execute(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
            ).fetchone()[0]
            query, params = rep.peek_sql(self.slot, self.upto, self.publication)
            commit_time = 0
            done = self.position  # the end of the last transaction whose changes are all in the buffer
            with self.conn.transaction():
                cursor = self.conn.cursor(name="jupyter_di_changes", binary=True)
                cursor.itersize = FETCH_ROWS
                try:
                    cursor.execute(query, params)
                except psycopg.Error as exc:
                    raise ConfigError(
                        f"reading the changes of replication slot {self.slot!r} failed: {str(exc).strip().splitlines()[0]}",
                        fix="check that the publication still exists and includes the table; reset the stream's state to start over.",
                    ) from None
                for (data,) in cursor:
                    kind = data[0]
                    if kind == 0x42:  # Begin
                        commit_time = po.decode(data).commit_time  # type: ignore[union-attr]
                        continue
                    if kind == 0x43:  # Commit
                        done = po.decode(data).end_lsn  # type: ignore[union-attr]
                        if len(self.ops) >= CHUNK_CHANGES:
                            yield from self._flush(done)
                        continue
                    message = po.decode(data)
                    if isinstance(message, po.Relation):
                        if message.oid == self.oid:
                            self._relation(message)
                        continue
                    self._change(message, commit_time)
                    if len(self.ops) >= CHUNK_CHANGES * 4:  # one huge transaction: flush with the previous position
                        yield from self._flush(done)
                cursor.close()
            yield from self._flush(max(done, self.upto), final=True)
        finally:
            if self.session is not None:
                self.session.close()
            self.conn.close()

    def _relation(self, rel: po.Relation) -> None:
        index = {c.name: i for i, c in enumerate(rel.columns)}
        self.mapping = [index.get(n, -1) for n in self.names]

    def _values(self, tuple_values: list) -> tuple:
        assert self.mapping is not None
        return tuple(tuple_values[i] if i >= 0 else po.UNCHANGED for i in self.mapping)

    def _append(self, op: str, row: tuple, commit_time: int) -> None:
        unchanged = None
        if po.UNCHANGED in row:
            if op == "insert":
                row = tuple(None if v is po.UNCHANGED else v for v in row)
            else:
                unchanged = [n for n, v in zip(self.names, row) if v is po.UNCHANGED]
                row = tuple(None if v is po.UNCHANGED else v for v in row)
        self.rows.append(row)
        self.ops.append(op)
        self.times.append(commit_time)
        self.unchanged.append(unchanged)

    def _change(self, message: Any, commit_time: int) -> None:
        if isinstance(message, po.Truncate):
            if self.oid in message.relations:
                self._append("truncate", (None,) * len(self.names), commit_time)
            return
        if getattr(message, "relation", None) != self.oid or self.mapping is None:
            return
        if isinstance(message, po.Insert):
            self._append("insert", self._values(message.new), commit_time)
        elif isinstance(message, po.Update):
            new = self._values(message.new)
            if message.old is not None:
                old = self._values(message.old)
                if not message.old_is_key:  # REPLICA IDENTITY FULL: the old row fills what the new one left out
                    new = tuple(o if v is po.UNCHANGED and o is not po.UNCHANGED else v for v, o in zip(new, old))
                if any(old[i] != new[i] for i in self.key_index):  # the key changed: the old row goes
                    self._append("delete", tuple(old[i] if i in self.key_index else None for i in range(len(old))), commit_time)
            self._append("update", new, commit_time)
        elif isinstance(message, po.Delete):
            old = self._values(message.old)
            self._append("delete", tuple(old[i] if i in self.key_index else None for i in range(len(old))), commit_time)

    # -- typing a chunk on the server -------------------------------------------------------------

    def _flush(self, position: int, final: bool = False) -> Iterator[pa.RecordBatch]:
        rows, ops, times, unchanged = self.rows, self.ops, self.times, self.unchanged
        self.rows, self.ops, self.times, self.unchanged = [], [], [], []
        meta = _metadata(self.target, position, self.state)
        if not rows:
            if final or position > self.position:
                yield _empty(self.target).replace_schema_metadata(meta)
            self.position = position
            return
        typed = self._typed(rows)
        changes = _change_arrays(ops, times, unchanged)
        start = 0
        out = []
        for batch in typed:
            n = batch.num_rows
            arrays = list(batch.columns) + [c.slice(start, n) for c in changes]
            out.append(pa.RecordBatch.from_arrays(arrays, schema=self.target))
            start += n
        if start != len(rows):
            raise RuntimeError(f"typed {start} of {len(rows)} changes")
        for batch in out[:-1]:
            yield batch
        yield out[-1].replace_schema_metadata(meta)
        self.position = position

    def _typed(self, rows: list[tuple]) -> list[pa.RecordBatch]:
        """The rows' text values cast to the columns' types by the server (see the module docstring)."""
        if self.session is None:
            self.session = self.cfg.adbc(autocommit=True)
            defs = sql.SQL(", ").join(
                [sql.SQL("{} int8").format(sql.Identifier(SEQ))] + [sql.SQL("{} text").format(sql.Identifier(n)) for n in self.names]
            )
            self.session.execute(render(sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(self.stage), defs)))
        columns = list(zip(*rows))
        arrays = [int64_array(np.arange(len(rows)))] + [self._text(list(values)) for values in columns]
        batch = pa.RecordBatch.from_arrays(arrays, names=[SEQ, *self.names])
        self.session.execute(render(sql.SQL("TRUNCATE {}").format(sql.Identifier(self.stage))))
        self.session.ingest(self.stage, batch, temporary=True)
        casts = sql.SQL(", ").join(
            [sql.Identifier(SEQ)]
            + [
                sql.SQL("CAST({} AS {}) AS {}").format(sql.Identifier(c.name), sql.SQL(c.sql_type), sql.Identifier(c.name))
                for c in self.cols
            ]
        )
        exprs = sql.SQL(", ").join(c.read_expression() for c in self.cols)
        query = sql.SQL("SELECT {} FROM (SELECT {} FROM {}) AS s ORDER BY {}").format(
            exprs, casts, sql.Identifier(self.stage), sql.Identifier(SEQ)
        )
        plain = pa.schema([self.target.field(n) for n in self.names])
        return list(_stream(self.session, render(query), plain, max(len(rows), self.batch_size)))

    def _text(self, values: list) -> pa.Array:
        if self.encoding not in ("UTF8", "SQL_ASCII"):
            codec = _PG_CODECS.get(self.encoding or "", self.encoding or "utf-8")
            values = [None if v is None else bytes(v).decode(codec).encode("utf-8") for v in values]
        return utf8_array(values)


_PG_CODECS = {"LATIN1": "latin-1", "WIN1252": "cp1252", "LATIN9": "iso8859-15", "EUC_JP": "euc_jp", "SJIS": "shift_jis"}


def _change_arrays(ops: list[str], times: list[int], unchanged: list[list[str] | None]) -> list[pa.Array]:
    """The change columns (op, commit time, unchanged columns) of a chunk."""
    op = text_array(ops)
    micros = np.asarray(times, dtype=np.int64) + po.PG_EPOCH_MICROS
    when = int64_array(micros).view(pa.timestamp("us", tz="UTC"))
    if any(u is not None for u in unchanged):
        flat = [name for u in unchanged if u for name in u]
        offsets = np.zeros(len(unchanged) + 1, dtype=np.int32)
        np.cumsum([len(u) if u else 0 for u in unchanged], out=offsets[1:])
        valid = np.fromiter((u is not None for u in unchanged), dtype=bool, count=len(unchanged))
        lists = pa.ListArray.from_arrays(
            pa.Array.from_buffers(pa.int32(), len(offsets), [None, pa.py_buffer(offsets)]),
            text_array(flat),
            mask=pa.Array.from_buffers(pa.bool_(), len(valid), [None, pa.py_buffer(np.packbits(~valid, bitorder="little"))]),
        )
    else:
        lists = pa.nulls(len(unchanged), pa.list_(pa.string()))
    return [op, when, lists]


__all__ = ["read_log_based", "lsn_bookmark", "CHANGE_OP_COLUMN", "CHANGE_TIME_COLUMN", "CHANGE_UNCHANGED_COLUMN"]
