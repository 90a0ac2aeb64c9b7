"""A Singer tap that replays a file of Singer messages (stdlib only): the SDK's standard target test
streams through a ``source: singer`` block.

Config: ``{"file": path}``.  ``--discover`` prints a catalog with one entry per stream, built from the
stream's *first* SCHEMA message (as a tap whose discovery does not know what comes later: later SCHEMAs
must be honoured by the reader).  A sync prints the file's lines unchanged, whatever the catalog selects
(the reader must filter).
Run as ``python cat_tap.py --config c.json [--discover | --catalog cat.json [--state s.json]]``.
"""

from __future__ import annotations

import json
import sys


def catalog(path: str) -> dict:
    entries: dict[str, dict] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            msg = json.loads(line)
            if msg.get("type") == "SCHEMA" and msg["stream"] not in entries:
                keys = msg.get("key_properties") or []
                entries[msg["stream"]] = {
                    "tap_stream_id": msg["stream"],
                    "stream": msg["stream"],
                    "key_properties": keys,
                    "schema": msg.get("schema") or {},
                    "metadata": [{"breadcrumb": [], "metadata": {"table-key-properties": keys, "inclusion": "available"}}],
                }
    return {"streams": list(entries.values())}


def main(argv: list[str]) -> int:
    config = json.load(open(argv[argv.index("--config") + 1], encoding="utf-8"))
    if "--discover" in argv:
        print(json.dumps(catalog(config["file"])))
        return 0
    with open(config["file"], "rb") as f:
        for line in f:
            sys.stdout.buffer.write(line if line.endswith(b"\n") else line + b"\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
