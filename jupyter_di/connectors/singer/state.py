"""The ``--state`` a Singer tap gets: its own last STATE, verbatim, with a user's override written in.

Why a module of its own: a tap's state is opaque to the Singer protocol (a tap
must accept the shape it printed back via ``--state``; docs/connectors.md,
"Singer taps and targets"), and taps disagree on its shape.  Meltano SDK taps keep
``bookmarks.<tap_stream_id>.{replication_key, replication_key_value}``; classic
singer-io taps keep ``bookmarks.<tap_stream_id>.<field>`` in whatever JSON type
they like (tap-stripe: an epoch number under ``created``) plus keys of their own
(``<stream>_events``, ``currently_syncing``, ``version``).  Rebuilding the state
from our row-derived bookmark in the SDK shape makes a classic tap find nothing
and resync everything, so the tap's last STATE is stored and handed back
unchanged.  The only place we look inside it is an override a user typed (a
one-run ``--bookmark`` or a pinned value): that rewrites just the one field the
override names, in the shape and JSON type the tap used, and leaves the rest.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any

from ..base import INCREMENTAL, StreamSettings
from ..catalog import stream_id

EPOCH_MILLIS_ABOVE = 10**11
"""An epoch number above this is taken as milliseconds (10**11 seconds is the year 5138; today in
milliseconds is ~1.8e12), so an override keeps the unit the tap stored (HubSpot-style taps use ms)."""


def derived_state(entry: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """The SDK-shape state for one bookmark value: used when no state of the tap's own is saved yet
    (first run with a pinned value, or a state saved before verbatim states were kept)."""
    return {"bookmarks": {stream_id(entry): {"replication_key": key, "replication_key_value": value}}}


def state_for_tap(
    entry: dict[str, Any],
    settings: StreamSettings,
    bookmark: dict[str, Any] | None,
    source_state: Any = None,
    bookmark_from_user: bool = False,
) -> Any:
    """The ``--state`` for a read, or None (no state: the tap starts from its own start).

    - not INCREMENTAL: None (a full read);
    - the tap's own saved state: verbatim, unless the user typed the bookmark, which is then
      written into it (``with_override``);
    - else the SDK shape built from the bookmark (first runs, states saved before this).
    """
    if settings.replication_method != INCREMENTAL or not settings.bookmark_properties:
        return None
    key = settings.bookmark_properties[0]
    value = (bookmark or {}).get(key)
    if source_state is not None:
        if not bookmark_from_user or value is None:
            return source_state
        rewritten = with_override(source_state, entry, key, value)
        if rewritten is not None:
            return rewritten
    if value is None:
        return None
    return derived_state(entry, key, value)


def with_override(state: Any, entry: dict[str, Any], key: str, value: Any) -> Any:
    """A copy of the tap's ``state`` with the bookmark of this stream set to ``value``.

    Which field: the stream's entry under ``bookmarks`` (by ``tap_stream_id``, else ``stream``)
    - SDK shape (it has ``replication_key_value`` or ``replication_key``): ``replication_key`` = key
      and ``replication_key_value`` = value; partitioned SDK state: in every partition;
    - classic shape (any other object): the field named like the bookmark column;
    - a bare value: replaced;
    - no entry yet: an SDK-shape entry.
    The value keeps the JSON type the tap stored there (``like``).  None when the state is not an
    object, so the caller falls back to the SDK shape.
    """
    if not isinstance(state, dict):
        return None
    state = copy.deepcopy(state)
    bookmarks = state.get("bookmarks")
    if not isinstance(bookmarks, dict):
        bookmarks = state["bookmarks"] = {}
    sid = stream_id(entry)
    if sid not in bookmarks and entry.get("stream") in bookmarks:
        sid = entry["stream"]
    current = bookmarks.get(sid)
    if current is None:
        bookmarks[sid] = {"replication_key": key, "replication_key_value": value}
    elif not isinstance(current, dict):  # a bare value per stream (the spec's {"users": 2} example)
        bookmarks[sid] = like(current, value)
    elif isinstance(current.get("partitions"), list):
        for part in current["partitions"]:
            if isinstance(part, dict):
                _set_sdk(part, key, value)
    elif "replication_key_value" in current or "replication_key" in current:
        _set_sdk(current, key, value)
    else:
        current[key] = like(current.get(key), value)
    return state


def _set_sdk(entry: dict[str, Any], key: str, value: Any) -> None:
    entry["replication_key"] = key
    entry["replication_key_value"] = like(entry.get("replication_key_value"), value)


def like(old: Any, new: Any) -> Any:
    """``new`` in the JSON type of ``old``: where the tap stored a number and the user typed text,
    a numeric text becomes that number and an ISO-8601 timestamp becomes epoch seconds (or
    milliseconds, when ``old`` is that big); an int bookmark stays an int, rounded down so the read
    starts no later than asked.  Anything else is ``new`` unchanged."""
    if isinstance(old, bool) or not isinstance(old, (int, float)) or not isinstance(new, str):
        return new
    try:
        number = float(new)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(new.strip().replace("Z", "+00:00"))
        except ValueError:
            return new
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        number = moment.timestamp() * (1000 if abs(old) >= EPOCH_MILLIS_ABOVE else 1)
    if not math.isfinite(number):
        return new
    if isinstance(old, int):
        return math.floor(number)
    return number
