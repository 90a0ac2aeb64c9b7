"""A tiny Singer tap (stdlib only) that is careless with its config, for tests of secret redaction.

Run as ``python secret_tap.py --config CONFIG [--discover | --catalog CATALOG]``.  Its config
says what it does (``mode``):

- ``leak``: prints its whole config to stderr in the forms a real tap might (JSON, a Python
  dict, a connection URL with the password URL-encoded), then exits 2 without a record;
- ``slow``: prints its config to stderr the same way, then emits the ``items`` stream's SCHEMA
  and one RECORD every ``delay`` seconds (default 0.02), forever: a run to kill mid-read.
  With ``pid_file`` it writes its pid there first.

``--discover`` prints the catalog (one stream, ``items``: ``id`` integer, ``note`` string).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse

CATALOG = {
    "streams": [
        {
            "tap_stream_id": "items",
            "stream": "items",
            "key_properties": ["id"],
            "schema": {"type": "object", "properties": {"id": {"type": ["integer"]}, "note": {"type": ["null", "string"]}}},
            "metadata": [{"breadcrumb": [], "metadata": {"inclusion": "available", "table-key-properties": ["id"]}}],
        }
    ]
}


def _leak(config: dict) -> None:
    password = str(config.get("password", ""))
    url = f"postgresql://{config.get('user', '')}:{urllib.parse.quote(password, safe='')}@{config.get('host', '')}/db"
    sys.stderr.write(f"config: {json.dumps(config)}\n")
    sys.stderr.write(f"config as a dict: {config!r}\n")
    sys.stderr.write(f"connecting to {url}\n")
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    path = argv[argv.index("--config") + 1]
    with open(path, encoding="utf-8") as fh:
        config = json.load(fh)
    if "--discover" in argv:
        print(json.dumps(CATALOG), flush=True)
        return 0
    _leak(config)
    if config.get("mode") == "leak":
        sys.stderr.write(f"FATAL: password authentication failed for user {config.get('user')!r} with {config.get('password')}\n")
        return 2
    if config.get("pid_file"):
        with open(config["pid_file"], "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
    delay = float(config.get("delay", 0.02))
    print(
        json.dumps({"type": "SCHEMA", "stream": "items", "schema": CATALOG["streams"][0]["schema"], "key_properties": ["id"]}), flush=True
    )
    i = 0
    while True:
        i += 1
        print(json.dumps({"type": "RECORD", "stream": "items", "record": {"id": i, "note": f"row {i}"}}), flush=True)
        time.sleep(delay)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
