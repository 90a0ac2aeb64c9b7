"""Turning a ReadRequest into what a Singer tap understands: a selected catalog.

Why a module of its own: selection metadata is the interface between our stream
settings and a tap, and follows the Meltano SDK conventions (semantics.md 1.3),
which are easiest to check here.  The ``--state`` is built in ``state.py``.
"""
from __future__ import annotations

import copy
from typing import Any

from ...errors import ConfigError
from ..base import INCREMENTAL, StreamSettings
from ..catalog import find_stream, stream_metadata


def stream_names(catalog: dict[str, Any]) -> list[str]:
    return [e.get("tap_stream_id") or e.get("stream") for e in catalog.get("streams", [])]


def entry_for(catalog: dict[str, Any], stream: str) -> dict[str, Any]:
    """The catalog entry of ``stream`` or a ConfigError listing the streams there are."""
    entry = find_stream(catalog, stream)
    if entry is None:
        names = ", ".join(repr(n) for n in stream_names(catalog)) or "(none)"
        raise ConfigError(
            f"the tap has no stream {stream!r}; it offers {names}.",
            stream=stream,
            fix="use one of the tap's stream names (tap_stream_id) as the stream.",
        )
    return entry


def _field_metadata(entry: dict[str, Any], name: str) -> dict[str, Any]:
    for item in entry.setdefault("metadata", []):
        if list(item.get("breadcrumb", [])) == ["properties", name]:
            return item.setdefault("metadata", {})
    md: dict[str, Any] = {}
    entry["metadata"].append({"breadcrumb": ["properties", name], "metadata": md})
    return md


def check_settings(entry: dict[str, Any], settings: StreamSettings) -> None:
    """Columns and bookmark properties must exist in the tap's schema."""
    props = entry.get("schema", {}).get("properties", {})
    missing = [c for c in settings.columns or [] if c not in props]
    if missing:
        raise ConfigError(
            f"the tap's stream has no column(s) {', '.join(repr(c) for c in missing)}.",
            stream=settings.stream,
            fix=f"pick columns among: {', '.join(props)}.",
        )
    if settings.replication_method == INCREMENTAL:
        if not settings.bookmark_properties:
            raise ConfigError(
                "INCREMENTAL replication needs a bookmark property (the tap's replication key).",
                stream=settings.stream,
                fix="set bookmark_properties to one column, e.g. [updated_at].",
            )
        key = settings.bookmark_properties[0]
        if key not in props:
            raise ConfigError(
                f"the bookmark property {key!r} is not a column of the tap's stream.",
                stream=settings.stream,
                fix=f"pick a bookmark property among: {', '.join(props)}.",
            )


def selected_catalog(catalog: dict[str, Any], stream: str, settings: StreamSettings) -> dict[str, Any]:
    """A copy of ``catalog`` with only ``stream`` selected, per the SDK selection rules.

    Stream breadcrumb ``[]``: ``selected: true``, ``replication-method`` and,
    when INCREMENTAL, ``replication-key`` = the first bookmark property (Singer
    taps know one replication key).  Requested columns are selected, every
    other field ``selected: false`` (``automatic`` fields such as keys are still
    emitted by the tap; we drop them from the output).  Other streams are
    deselected.
    """
    result = copy.deepcopy(catalog)
    target = entry_for(result, stream)
    wanted = set(settings.columns) if settings.columns is not None else None
    for entry in result.get("streams", []):
        md = stream_metadata(entry)
        chosen = entry is target
        md["selected"] = chosen
        entry["selected"] = chosen  # legacy taps read the top-level flag
        if not chosen:
            continue
        md["replication-method"] = settings.replication_method
        entry["replication_method"] = settings.replication_method
        if settings.replication_method == INCREMENTAL and settings.bookmark_properties:
            md["replication-key"] = settings.bookmark_properties[0]
            entry["replication_key"] = settings.bookmark_properties[0]
        else:
            md.pop("replication-key", None)
            entry.pop("replication_key", None)
        for name in entry.get("schema", {}).get("properties", {}):
            _field_metadata(entry, name)["selected"] = wanted is None or name in wanted
    return result
