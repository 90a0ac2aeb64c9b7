"""The text encoding of PostgreSQL connections: UTF8 on every session, bytes checked for SQL_ASCII.

Why: the server sends text (query results, binary COPY, and ``pgoutput``'s change messages, which
``pg_logical_slot_peek_binary_changes`` returns) in the session's *client encoding*, which defaults
to the database's.  Arrow, DuckDB and the destinations take every byte as UTF-8, so a LATIN1
database read with the default gave ``caf\\xe9`` for ``café`` and mangled non-ASCII names in the
SQL we send.  Every connection therefore asks for ``client_encoding=UTF8`` (``PgConfig.conninfo``)
and the server converts from any encoding it knows (no Python codec table to keep in step).

SQL_ASCII is not an encoding: the server stores bytes as given and cannot convert them.  A session
on such a database reads raw (``SET client_encoding = 'SQL_ASCII'``), so the bytes arrive exactly
as stored, and each text column is checked here: UTF-8 passes unchanged, anything else stops the
read with the column's name (never guessed at, never replaced).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from psycopg import sql

from ...errors import ConfigError

CLIENT_ENCODING = "UTF8"
RAW = "SQL_ASCII"


def raw_text(session: Any) -> bool:
    """Whether the session's database is SQL_ASCII; if so the session is switched to read its bytes
    as stored (one round trip, once per session, before its first read)."""
    encoding = session.fetchall("SELECT current_setting('server_encoding')")[0][0]
    if encoding != RAW:
        return False
    session.execute(f"SET client_encoding = '{RAW}'")
    return True


def check_utf8(values: pa.Array | pa.ChunkedArray, column: str) -> None:
    """``values`` (text, or anything holding text: arrays, JSON) must be UTF-8; else one ConfigError
    naming ``column`` (the block and stream are added by the runner)."""
    if isinstance(values, pa.ChunkedArray):
        for chunk in values.chunks:
            check_utf8(chunk, column)
        return
    if isinstance(values.type, pa.BaseExtensionType):
        values = values.storage
    try:
        values.validate(full=True)
    except pa.ArrowInvalid:
        raise not_utf8(column) from None


def check_batch(batch: pa.RecordBatch) -> None:
    for name, column in zip(batch.schema.names, batch.columns):
        check_utf8(column, name)


def not_utf8(column: str) -> ConfigError:
    name = sql.Identifier(column).as_string(None)
    return ConfigError(
        f"column {column!r} holds bytes that are not UTF-8. The source database's encoding is SQL_ASCII, which stores "
        "bytes without saying which characters they are, so they are not read as text (nothing was written for them).",
        fix=f"convert the values to UTF-8 at the source (Latin-1 text: SET {name} = convert_from(convert(convert_to({name}, "
        "'SQL_ASCII'), 'LATIN1', 'UTF8'), 'SQL_ASCII')), or move the data to a UTF8 database; a LOG_BASED stream then needs a "
        "state reset (its change log keeps the old bytes).",
    )
