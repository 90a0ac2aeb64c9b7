"""A decoder for PostgreSQL's logical replication protocol (``pgoutput``, protocol version 1).

Why our own: the messages arrive as ``bytea`` from ``pg_logical_slot_peek_binary_changes`` (see
replication.py for why that function and not a streaming connection), and no maintained Python
package decodes them without also owning the connection.  The format is small and documented
("Logical Replication Message Formats" in the PostgreSQL manual); this module is pure (bytes in,
dataclasses out) so every message kind is unit-tested without a server.

Column values stay as the bytes of their text form (``pgoutput`` sends the type's output function's
text): the reader hands them back to the server to be parsed by each type's own input function, so
every type (enums, domains, arrays, ranges) reads exactly as a snapshot ``SELECT`` does.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field

import numpy as np

UNCHANGED = object()
"""A value ``pgoutput`` did not send: a TOASTed value the UPDATE left as it was (kind ``u``)."""

PG_EPOCH_MICROS = 946_684_800_000_000
"""2000-01-01 in microseconds since 1970-01-01: PostgreSQL timestamps count from 2000."""

_U8 = struct.Struct("!B")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_U64 = struct.Struct("!Q")


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` -> its 64-bit position."""
    try:
        high, low = text.strip().split("/")
        value = (int(high, 16) << 32) | int(low, 16)
    except (ValueError, AttributeError):
        raise ValueError(f"{text!r} is not a PostgreSQL WAL position (LSN), which looks like '16/B374D848'") from None
    if not 0 <= value < 1 << 64 or int(low, 16) >= 1 << 32:
        raise ValueError(f"{text!r} is not a PostgreSQL WAL position (LSN)")
    return value


def format_lsn(value: int) -> str:
    """A position as zero-padded ``XXXXXXXX/XXXXXXXX``: PostgreSQL reads it as ``pg_lsn``, and as text it
    sorts like the positions (a bookmark compared as text between consumers)."""
    return f"{value >> 32:08X}/{value & 0xFFFFFFFF:08X}"


def pg_timestamp(micros: int) -> dt.datetime:
    """A protocol timestamp (microseconds since 2000-01-01 UTC) as an aware datetime."""
    return dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=micros)


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: int
    """Microseconds since 2000-01-01 UTC."""
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    """Where the next transaction starts: a slot confirmed up to here never sends this one again."""
    commit_time: int


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    typmod: int
    key: bool
    """Part of the replica identity (sent in the old key tuple of updates and deletes)."""


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str
    """``d`` default (primary key), ``n`` nothing, ``f`` full, ``i`` index."""
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True)
class Insert:
    relation: int
    new: list


@dataclass(frozen=True)
class Update:
    relation: int
    new: list
    old: list | None = None
    """The old row (REPLICA IDENTITY FULL, ``O``) or its key (``K``, when the key changed)."""
    old_is_key: bool = False


@dataclass(frozen=True)
class Delete:
    relation: int
    old: list
    old_is_key: bool = True


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]
    cascade: bool = False
    restart_identity: bool = False


@dataclass(frozen=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True)
class Unknown:
    kind: str
    data: bytes = field(repr=False, default=b"")


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Origin | TypeInfo | LogicalMessage | Unknown


class DecodeError(ValueError):
    """The bytes are not a pgoutput protocol-1 message (a truncated or foreign stream)."""


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\x00", pos)
    return data[pos:end].decode("utf-8", "surrogateescape"), end + 1


def decode_tuple(data: bytes, pos: int) -> tuple[list, int]:
    """TupleData at ``pos``: values as ``bytes`` (text form), ``None`` (NULL) or ``UNCHANGED``."""
    (count,) = _I16.unpack_from(data, pos)
    pos += 2
    values: list = [None] * count
    for i in range(count):
        kind = data[pos]
        pos += 1
        if kind == 0x74 or kind == 0x62:  # 't' text, 'b' binary (protocol 2 option; kept as bytes)
            (length,) = _I32.unpack_from(data, pos)
            pos += 4
            values[i] = data[pos : pos + length]
            pos += length
        elif kind == 0x6E:  # 'n'
            pass
        elif kind == 0x75:  # 'u'
            values[i] = UNCHANGED
        else:
            raise DecodeError(f"unknown tuple value kind {chr(kind)!r}")
    if pos > len(data):
        raise DecodeError("truncated tuple data")
    return values, pos


def decode(data: bytes) -> Message:
    """One message (one row of ``pg_logical_slot_peek_binary_changes``' ``data``)."""
    if not data:
        raise DecodeError("empty message")
    kind = data[0]
    try:
        if kind == 0x49:  # 'I'
            (rel,) = _U32.unpack_from(data, 1)
            if data[5] != 0x4E:
                raise DecodeError("insert without a new tuple")
            values, _ = decode_tuple(data, 6)
            return Insert(rel, values)
        if kind == 0x55:  # 'U'
            (rel,) = _U32.unpack_from(data, 1)
            pos = 5
            old = None
            old_is_key = False
            if data[pos] in (0x4B, 0x4F):  # 'K' key, 'O' old row
                old_is_key = data[pos] == 0x4B
                old, pos = decode_tuple(data, pos + 1)
            if data[pos] != 0x4E:
                raise DecodeError("update without a new tuple")
            new, _ = decode_tuple(data, pos + 1)
            return Update(rel, new, old, old_is_key)
        if kind == 0x44:  # 'D'
            (rel,) = _U32.unpack_from(data, 1)
            if data[5] not in (0x4B, 0x4F):
                raise DecodeError("delete without an old key or row")
            old, _ = decode_tuple(data, 6)
            return Delete(rel, old, data[5] == 0x4B)
        if kind == 0x42:  # 'B'
            final_lsn, commit_time = _U64.unpack_from(data, 1)[0], _I64.unpack_from(data, 9)[0]
            (xid,) = _U32.unpack_from(data, 17)
            return Begin(final_lsn, commit_time, xid)
        if kind == 0x43:  # 'C'  (flags byte at 1, unused)
            commit_lsn, end_lsn = _U64.unpack_from(data, 2)[0], _U64.unpack_from(data, 10)[0]
            (commit_time,) = _I64.unpack_from(data, 18)
            return Commit(commit_lsn, end_lsn, commit_time)
        if kind == 0x52:  # 'R'
            (oid,) = _U32.unpack_from(data, 1)
            namespace, pos = _cstring(data, 5)
            name, pos = _cstring(data, pos)
            identity = chr(data[pos])
            (ncols,) = _I16.unpack_from(data, pos + 1)
            pos += 3
            columns = []
            for _ in range(ncols):
                flags = data[pos]
                colname, pos = _cstring(data, pos + 1)
                type_oid, typmod = _U32.unpack_from(data, pos)[0], _I32.unpack_from(data, pos + 4)[0]
                pos += 8
                columns.append(RelationColumn(colname, type_oid, typmod, bool(flags & 1)))
            return Relation(oid, namespace or "pg_catalog", name, identity, tuple(columns))
        if kind == 0x54:  # 'T'
            (count,) = _U32.unpack_from(data, 1)
            options = data[5]
            oids = tuple(_U32.unpack_from(data, 6 + 4 * i)[0] for i in range(count))
            return Truncate(oids, bool(options & 1), bool(options & 2))
        if kind == 0x4F:  # 'O'
            (lsn,) = _U64.unpack_from(data, 1)
            name, _ = _cstring(data, 9)
            return Origin(lsn, name)
        if kind == 0x59:  # 'Y'
            (oid,) = _U32.unpack_from(data, 1)
            namespace, pos = _cstring(data, 5)
            name, _ = _cstring(data, pos)
            return TypeInfo(oid, namespace, name)
        if kind == 0x4D:  # 'M'
            transactional = bool(data[1])
            (lsn,) = _U64.unpack_from(data, 2)
            prefix, pos = _cstring(data, 10)
            (length,) = _I32.unpack_from(data, pos)
            return LogicalMessage(transactional, lsn, prefix, bytes(data[pos + 4 : pos + 4 + length]))
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"truncated {chr(kind)!r} message: {exc}") from None
    return Unknown(chr(kind), bytes(data))


# -- many tuples at once -------------------------------------------------------------------------

KIND_TEXT, KIND_BINARY, KIND_NULL, KIND_UNCHANGED = 0x74, 0x62, 0x6E, 0x75


def be_uint32(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Big-endian unsigned 32-bit integers at byte positions ``at`` of ``data`` (uint8)."""
    b = [data[at + i].astype(np.uint32) for i in range(4)]
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]


def split_tuples(data: np.ndarray, starts: np.ndarray, ncols: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The TupleData starting at each of ``starts`` in ``data`` (uint8; all with ``ncols`` values),
    split column by column with numpy: per column (kinds, value starts, value lengths).

    Why: decoding value by value in Python costs microseconds per value; a column at a time over
    every tuple of a chunk costs a few numpy operations, whatever the number of rows.
    """
    if len(starts) == 0:
        return [(np.empty(0, np.uint8), np.empty(0, np.int64), np.empty(0, np.int64)) for _ in range(ncols)]
    size = len(data)
    if int(starts.max()) + 2 > size:
        raise DecodeError("truncated tuple data")
    counts = (data[starts].astype(np.int32) << 8) | data[starts + 1]
    if not (counts == ncols).all():
        raise DecodeError(f"tuples of {sorted(set(counts.tolist()))} columns where {ncols} were announced")
    pos = starts.astype(np.int64) + 2
    out = []
    for _ in range(ncols):
        if int(pos.max()) >= size:
            raise DecodeError("truncated tuple data")
        kinds = data[pos]
        sized = (kinds == KIND_TEXT) | (kinds == KIND_BINARY)
        bad = ~(sized | (kinds == KIND_NULL) | (kinds == KIND_UNCHANGED))
        if bad.any():
            raise DecodeError(f"unknown tuple value kind {chr(int(kinds[bad][0]))!r}")
        lengths = np.zeros(len(pos), dtype=np.int64)
        if sized.any():
            at = pos[sized] + 1
            if int(at.max()) + 4 > size:
                raise DecodeError("truncated tuple data")
            lengths[sized] = be_uint32(data, at).astype(np.int64)
        values = pos + 5
        out.append((kinds, values, lengths))
        pos = np.where(sized, values + lengths, pos + 1)
    if int(pos.max()) > size:
        raise DecodeError("truncated tuple data")
    return out
