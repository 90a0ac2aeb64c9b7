"""PostgreSQL's infinite dates and timestamps through ADBC, both ways.

Why: PostgreSQL stores ``infinity``/``-infinity`` as the greatest/least value of the type's integer
(``date``: days, ``timestamp``/``timestamptz``: microseconds, both counted from 2000-01-01), and
ADBC converts to and from Arrow's 1970 epoch by adding or subtracting the difference without an
overflow check.  So a read used to wrap them around: ``date 'infinity'`` arrived as
5877612-06-21 BC, ``timestamp 'infinity'`` as 290279-12-22 BC, silently.  Here they become the
convention of ``_shared/infinity.py`` (DuckDB's: ± the greatest value of the Arrow type) after a
read, and PostgreSQL's own values again before a write.

The read costs one ``min_max`` per date/timestamp column per batch: every wrapped value lies below
the least value PostgreSQL can hold (4714-11-24 BC), so a column whose least value is above it is
passed on untouched; only a batch holding infinity is rewritten (numpy, no Python per value).

The one thing Arrow cannot carry: a finite timestamp after 294247-01-10 04:00:54.775806
(PostgreSQL goes to 294276) does not fit microseconds since 1970 in 64 bits; it stops the read
with the column's name instead of arriving wrapped around.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ...errors import ConfigError, SchemaMismatch
from .._shared.infinity import MAX, extremes, has_infinity, replaced, stored, width

EPOCH = {32: 10957, 64: 946_684_800_000_000}
"""2000-01-01 (PostgreSQL's epoch) in days and in microseconds since 1970-01-01 (Arrow's)."""
_PG_MIN = {32: -(2**31), 64: -(2**63)}
"""PostgreSQL's -infinity (its +infinity is ``MAX``)."""
LOWEST = {32: -2_440_588, 64: -210_866_803_200_000_000}
"""4714-11-24 BC, the least date/timestamp PostgreSQL holds, since 1970-01-01: anything ADBC gives
below it is a wrapped value."""


def _wrapped(value: int, bits: int) -> int:
    """``value + epoch`` in ``bits``-bit two's complement, as ADBC's reader computes it."""
    span = 2**bits
    return (value + EPOCH[bits] + span // 2) % span - span // 2


def from_read(array: pa.Array, column: str) -> pa.Array:
    """A date/timestamp column (or a list of them) as ADBC read it, with PostgreSQL's infinities as
    the Arrow convention; untouched (the same array) when it holds none."""
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        values = array.values
        fixed = from_read(values, column)
        if fixed is values:
            return array
        buffers = array.buffers()[:2]
        return pa.Array.from_buffers(array.type, len(array), buffers, null_count=array.null_count, offset=array.offset, children=[fixed])
    bits = width(array.type)
    ends = extremes(array) if bits is not None else None
    if bits is None or ends is None or (ends[0] >= LOWEST[bits] and ends[1] < MAX[bits]):
        return array
    values = stored(array)
    plus = values == _wrapped(MAX[bits], bits)
    minus = values == _wrapped(_PG_MIN[bits], bits)
    beyond = ((values < LOWEST[bits]) | (values == MAX[bits])) & ~plus & ~minus
    valid = np.ones(len(values), dtype=bool) if array.null_count == 0 else _valid(array)
    if (beyond & valid).any():
        raise ConfigError(
            f"column {column!r} holds a timestamp after 294247-01-10 04:00:54.775806, which Arrow (microseconds since "
            "1970 in 64 bits) cannot hold.",
            fix="cap it at the source, e.g. in a view: LEAST(col, '294247-01-01'), or use 'infinity' for \"no end\".",
        )
    values[plus] = MAX[bits]
    values[minus] = -MAX[bits]
    return replaced(array, values)


def _valid(array: pa.Array) -> np.ndarray:
    """Which stored slots (from the buffer's start, as ``stored``) hold a value, not a NULL."""
    mask = np.zeros(array.offset + len(array), dtype=bool)
    mask[array.offset :] = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return mask


def for_write(array: pa.Array, column: str) -> pa.Array:
    """A date32/timestamp[us] column (or a list of them) shaped for ADBC's COPY writer with the Arrow
    convention's infinities as PostgreSQL's; untouched (the same array) when it holds none.

    ADBC subtracts the epoch when it writes: a date is handed over as the value that wraps around to
    PostgreSQL's; a timestamp column with +infinity (which no Arrow timestamp wraps to) as int64
    holding PostgreSQL's own microseconds: binary COPY sends an int8 exactly as the server reads a
    timestamp.  Inside a list the element type must stay a timestamp, so +infinity there is refused.
    """
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        values = array.values
        fixed = for_write(values, column)
        if fixed is values:
            return array
        if fixed.type != values.type:
            raise SchemaMismatch(
                f"column {column!r} is a list of timestamps holding infinity, which the PostgreSQL destination cannot write "
                "through Arrow (-infinity it can).",
                fix="replace infinity at the source (e.g. a view with array_replace(col, 'infinity', NULL)), or write the "
                "stream into DuckDB.",
            )
        buffers = array.buffers()[:2]
        return pa.Array.from_buffers(array.type, len(array), buffers, null_count=array.null_count, offset=array.offset, children=[fixed])
    bits = width(array.type)
    ends = extremes(array) if bits is not None else None
    if bits is None or ends is None or (ends[1] != MAX[bits] and ends[0] != -MAX[bits]):
        return array
    values = stored(array)
    plus, minus = values == MAX[bits], values == -MAX[bits]
    if bits == 32:
        values[plus] = _wrapped(MAX[bits], bits)
        values[minus] = _wrapped(_PG_MIN[bits], bits)
        return replaced(array, values)
    if not plus.any():  # -infinity alone wraps: the column stays a timestamp
        values[minus] = _wrapped(_PG_MIN[bits], bits)
        return replaced(array, values)
    values -= EPOCH[bits]  # PostgreSQL's microseconds (a value below its range wraps and the server refuses it)
    values[plus] = MAX[bits]
    values[minus] = _PG_MIN[bits]
    return replaced(array, values, pa.int64())


def cast_keeping_infinity(array: pa.Array, target: pa.DataType, safe: bool) -> pa.Array:
    """``array.cast(target)``, where a timestamp infinity of another unit (``timestamp[ns]``'s
    ``2**63 - 1``) stays infinity in ``target``'s unit instead of becoming a finite value."""
    if not (pa.types.is_timestamp(array.type) and pa.types.is_timestamp(target) and has_infinity(array)):
        return array.cast(target, safe=safe)
    values = stored(array)
    tail = values[array.offset :]
    plus, minus = tail == MAX[64], tail == -MAX[64]
    tail[plus | minus] = 0
    cast = replaced(array, values).cast(target, safe=safe)
    out = stored(cast)
    out_tail = out[cast.offset :]
    out_tail[plus] = MAX[64]
    out_tail[minus] = -MAX[64]
    return replaced(cast, out)
