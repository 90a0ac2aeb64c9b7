"""``jupyter-di tap NAME``: a built-in source as a Singer tap (``--discover``, or a sync on stdout).

Why here: any source in the connector registry becomes a Singer tap for Meltano or a shell pipe,
without code of its own.

- ``--discover`` prints the source's catalog (the same one panels show);
- a sync reads the streams the ``--catalog`` selects (every stream without one), each with the
  replication method and replication key its metadata gives (FULL_TABLE by default); it prints the
  stream's SCHEMA (with its key properties), its RECORDs and, for an INCREMENTAL stream, a STATE
  after every batch in the SDK's shape (``bookmarks.<stream>.replication_key_value``: the bookmark
  of the batch's last row, since incremental reads are ordered by it);
- ``--state`` gives back such a state: the stream is read from its ``replication_key_value``
  (inclusive, as every jupyter-di read; the target upserts on the keys, so nothing doubles).
"""

from __future__ import annotations

import json
from typing import IO, Any

from ..connectors import registry
from ..connectors._shared.row_values import cursor_values
from ..connectors._shared.singer_messages import record_lines, schema_line, state_line
from ..connectors.base import INCREMENTAL, ReadRequest, Source
from ..connectors.catalog import json_schema_for_arrow, stream_id, stream_is_selected, stream_settings_from_catalog
from ..errors import ConfigError
from .di_config import stream_settings

BATCH_ROWS = 50_000


def discover(source: str, config: dict[str, Any], out: IO[str]) -> None:
    with registry.source_class(source)(config) as src:
        catalog = src.discover(None)
    out.write(json.dumps(catalog, ensure_ascii=False, default=str) + "\n")
    out.flush()


def sync(source: str, config: dict[str, Any], out: IO[str], catalog: dict[str, Any] | None, state: Any) -> None:
    """Print SCHEMA, RECORD and STATE messages for every selected stream."""
    state = dict(state) if isinstance(state, dict) else {}
    bookmarks = state.setdefault("bookmarks", {})
    with registry.source_class(source)(config) as src:
        if catalog is None:
            catalog = src.discover(None)
        entries = [e for e in catalog.get("streams", []) if stream_is_selected(e)]
        if not entries:
            raise ConfigError("the catalog selects no stream.", fix="select streams in the catalog (metadata `selected: true`).")
        for entry in entries:
            _sync_stream(src, entry, bookmarks, state, out)


def _sync_stream(src: Source, entry: dict[str, Any], bookmarks: dict[str, Any], state: dict[str, Any], out: IO[str]) -> None:
    name = str(stream_id(entry))
    given = stream_settings_from_catalog(entry)
    if not given.get("key_properties") and entry.get("key_properties"):
        given["key_properties"] = list(entry["key_properties"])
    settings = stream_settings(name, given, block="")
    incremental = settings.replication_method == INCREMENTAL and bool(settings.bookmark_properties)
    key = settings.bookmark_properties[0] if incremental else None
    bookmark: dict[str, Any] | None = None
    saved = bookmarks.get(name)
    if (
        key is not None
        and isinstance(saved, dict)
        and saved.get("replication_key") == key
        and saved.get("replication_key_value") is not None
    ):
        bookmark = {key: saved["replication_key_value"]}
    reader = src.read(ReadRequest(settings=settings, bookmark=bookmark, batch_size=BATCH_ROWS))
    schema = {"type": "object", "properties": {f.name: json_schema_for_arrow(f.type, f) for f in reader.schema}}
    out.write(schema_line(name, schema, settings.key_properties))
    printed = None
    for batch in reader:
        if not batch.num_rows:
            continue
        out.writelines(record_lines(name, batch))
        if key is not None:
            values, _ = cursor_values(batch, [key])
            if values is not None:
                bookmarks[name] = {"replication_key": key, "replication_key_value": values[key]}
                printed = state_line(state)
                out.write(printed)
    if key is not None and state_line(state) != printed:
        out.write(state_line(state))
    out.flush()
