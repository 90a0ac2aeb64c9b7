"""What an INCREMENTAL stream needs before it is read, and what its read must report.

Why a module of its own: each rule here closes a way an incremental sync could
lose or double rows while the run still says "done":

- a one-run bookmark override must name a real stream and bookmark column;
- a stream without a key would append the rows tied with the bookmark again on
  every run, so it takes the table's discovered key or is refused (unless the
  user accepts duplicates at ties with ``append_only``);
- rows whose bookmark column is NULL can never be compared with a bookmark, so
  every run counts them and says that changes to them are not synced (or, with
  ``null_cursor: resync``, the source re-reads them every run).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa

from ..connectors.base import INCREMENTAL, LOG_BASED, ReadRequest, StreamSettings, is_json_field
from ..errors import ConfigError


def check_override(bookmark: dict[str, Any], settings: StreamSettings, *, block: str) -> dict[str, Any]:
    """A one-run override (``--bookmark BLOCK.STREAM.COLUMN=VALUE``) for this stream, checked.

    An override that names a column the stream does not keep its bookmark on
    would be silently ignored by the read: refuse it instead.
    """
    stream = settings.stream
    if settings.replication_method == LOG_BASED:
        if set(bookmark) != {"lsn"}:
            raise ConfigError(
                f"a LOG_BASED stream's bookmark is its log position: give {block}.{stream}.lsn=<position>, not {', '.join(bookmark)}.",
                block=block,
                stream=stream,
                fix="e.g. --bookmark " + f"{block}.{stream}.lsn=0/16B3748 (SELECT pg_current_wal_lsn() shows the server's).",
            )
        return dict(bookmark)
    if settings.replication_method != INCREMENTAL:
        raise ConfigError(
            f"a bookmark override was given for stream {stream!r}, which is {settings.replication_method} (it has no bookmark).",
            block=block,
            stream=stream,
            fix="drop the --bookmark, or make the stream INCREMENTAL.",
        )
    unknown = [c for c in bookmark if c not in settings.bookmark_properties]
    if unknown:
        raise ConfigError(
            f"a bookmark override names column {unknown[0]!r}, which is not a bookmark property of the stream.",
            block=block,
            stream=stream,
            fix=f"use one of: {', '.join(settings.bookmark_properties) or 'none set'}.",
        )
    return dict(bookmark)


def with_discovered_keys(settings: StreamSettings, entry: dict[str, Any] | None, *, block: str) -> StreamSettings:
    """An INCREMENTAL stream without ``key_properties`` takes the key the source discovered
    (primary key, or a unique index over NOT NULL columns); without one it is refused.

    Why: an inclusive bookmark re-reads the rows tied with it on every run; only
    an upsert on a key makes that harmless.  ``append_only: true`` accepts the
    duplicates explicitly.
    """
    if settings.key_properties or settings.append_only:
        return settings
    keys = list((entry or {}).get("key_properties") or [])
    if keys:
        return dataclasses.replace(settings, key_properties=keys, unique_constraints=list(settings.unique_constraints or keys))
    raise ConfigError(
        "an INCREMENTAL stream needs key_properties, and the source reports no primary key or unique index for it: "
        "rows tied with the bookmark are read again on every run and would be appended again.",
        block=block,
        stream=settings.stream,
        fix="set key_properties to the columns that identify a row (e.g. [id]); or set append_only: true to accept "
        "duplicates at ties; or use replication_method: FULL_TABLE.",
    )


def cursor_warnings(
    settings: StreamSettings, entry: dict[str, Any] | None, null_rows_read: int, request: ReadRequest, schema: pa.Schema
) -> list[dict[str, Any]]:
    """The run report's lines about this stream's bookmark (``skipped``: changes may have been missed).

    ``null_rows_read`` are rows read with a NULL bookmark column (all of them on a
    full read, or every run with ``resync``); the source may also have counted the
    ones an incremental read left out (``request.stats["null_cursor_rows"]``).
    """
    stream = settings.stream
    # what the source itself says it may have missed (``warnings``), or wants the user to know (``notes``)
    out: list[dict[str, Any]] = [{"stream": stream, "skipped": True, "message": str(m)} for m in request.stats.get("warnings") or []]
    out += [{"stream": stream, "skipped": False, "message": str(m)} for m in request.stats.get("notes") or []]
    if settings.replication_method != INCREMENTAL:
        return out
    columns = " or ".join(settings.bookmark_properties)
    unread = int(request.stats.get("null_cursor_rows") or 0)
    if request.bookmark and settings.null_cursor != "resync":
        total = max(unread, null_rows_read)
        if total and settings.null_cursor == "report":
            out.append(
                {
                    "stream": stream,
                    "skipped": True,
                    "message": f"{total:,} rows with NULL {columns} cannot be tracked incrementally: changes to them are not synced "
                    "(set null_cursor: resync to re-read them every run, or null_cursor: ignore to accept this).",
                }
            )
    elif null_rows_read and settings.null_cursor != "ignore":
        what = (
            "are re-read every run (null_cursor: resync)"
            if settings.null_cursor == "resync" and request.bookmark
            else "were synced, but cannot be tracked incrementally"
        )
        out.append({"stream": stream, "skipped": False, "message": f"{null_rows_read:,} rows with NULL {columns} {what}."})
    for name in settings.bookmark_properties:
        index = schema.get_field_index(name)
        if index < 0:
            continue
        field = schema.field(index)
        kind = "JSON" if is_json_field(field) else "boolean" if pa.types.is_boolean(field.type) else None
        if kind:
            out.append(
                {
                    "stream": stream,
                    "skipped": False,
                    "message": f"bookmark column {name!r} is {kind}: it orders by {'JSON rules, not by time' if kind == 'JSON' else 'false < true only'}, "
                    "so a later change may sort below the saved bookmark and be missed; prefer a timestamp or a sequence.",
                }
            )
    return out
