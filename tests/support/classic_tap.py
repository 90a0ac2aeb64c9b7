"""A tiny classic singer-io style tap (stdlib only), for tests of how a tap's own state is kept.

Why not a real one: the classic taps that keep an epoch-number bookmark (tap-stripe and friends)
all need a SaaS API.  This one behaves like them, reading its rows from a JSON file instead:

- one stream, ``charges`` (key ``id``), records ``{"id", "updated" (RFC3339), "amount"}``;
- its state is ``{"bookmarks": {"charges": {"updated": <epoch seconds, int>},
  "charges_events": {"updates_created": <epoch seconds>}}, "currently_syncing": ...}``;
- ``--state`` is honoured exactly as singer-io taps do: ``bookmarks.charges.updated`` (an epoch
  number) is read back and only rows updated strictly after it are emitted; a state of any other
  shape (e.g. the SDK's ``replication_key_value``) is not understood, so the tap starts from
  ``start_date`` and resyncs everything;
- a STATE every ``state_every`` records and one after the last record (``currently_syncing``
  null), like ``singer.write_state`` calls in classic taps.

Config: ``{"rows_file": path to a JSON list of records, "start_date": RFC3339, "state_every": n}``.
Run as ``python classic_tap.py --config c.json [--discover | --catalog cat.json [--state s.json]]``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

STREAM = "charges"
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer"]},
        "updated": {"type": ["null", "string"], "format": "date-time"},
        "amount": {"type": ["null", "integer"]},
    },
}
CATALOG = {
    "streams": [
        {
            "tap_stream_id": STREAM,
            "stream": STREAM,
            "key_properties": ["id"],
            "schema": SCHEMA,
            "metadata": [
                {
                    "breadcrumb": [],
                    "metadata": {
                        "table-key-properties": ["id"],
                        "forced-replication-method": "INCREMENTAL",
                        "valid-replication-keys": ["updated"],
                        "inclusion": "available",
                    },
                },
                {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic"}},
                {"breadcrumb": ["properties", "updated"], "metadata": {"inclusion": "automatic"}},
                {"breadcrumb": ["properties", "amount"], "metadata": {"inclusion": "available"}},
            ],
        }
    ]
}


def _epoch(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _out(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def main(args: list[str]) -> int:
    config = json.load(open(_opt(args, "--config")))
    if "--discover" in args:
        _out(CATALOG)
        return 0
    state = json.load(open(_opt(args, "--state"))) if _opt(args, "--state") else {}
    bookmarks = state.setdefault("bookmarks", {})
    since = (bookmarks.get(STREAM) or {}).get("updated")
    if not isinstance(since, (int, float)):
        sys.stderr.write(f"no epoch bookmark for {STREAM}; syncing from start_date\n")
        since = _epoch(config["start_date"]) - 1
    rows = sorted(json.load(open(config["rows_file"])), key=lambda r: (_epoch(r["updated"]), r["id"]))
    every = int(config.get("state_every", 2))
    _out({"type": "SCHEMA", "stream": STREAM, "schema": SCHEMA, "key_properties": ["id"], "bookmark_properties": ["updated"]})
    state["currently_syncing"] = STREAM
    _out({"type": "STATE", "value": state})
    sent = 0
    for row in rows:
        updated = _epoch(row["updated"])
        if updated <= since:
            continue
        _out({"type": "RECORD", "stream": STREAM, "record": row, "time_extracted": "2024-06-01T00:00:00Z"})
        sent += 1
        bookmarks[STREAM] = {"updated": updated}
        events = bookmarks.setdefault(f"{STREAM}_events", {"updates_created": updated})
        events["updates_created"] = max(events["updates_created"], updated)
        if sent % every == 0:
            _out({"type": "STATE", "value": state})
    state["currently_syncing"] = None
    _out({"type": "STATE", "value": state})
    sys.stderr.write(f"INFO synced {sent} {STREAM} records\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
